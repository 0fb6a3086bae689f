"""Turning an observation into one table row: the state discretiser of the tabular learners.

A tabular learner keeps one Q-value per (state, action), so the env's continuous feature vector
must become one integer. A :class:`DiscretiserConfig` lists a few *feature specs*; each one
reads one number from the observation and puts it into a bin, and the bins of all specs together
are the state, numbered in mixed radix (the first spec is the most significant digit).

A spec names its input in one of two ways:

* one feature, by its exact name in ``env.unwrapped.feature_names``::

      {"features": "task.difficulty", "bins": [0.3, 0.7]}

* several, by a glob (:func:`fnmatch.fnmatchcase`) with a reduction over the matched values::

      {"features": "*.wait", "reduce": "min", "bins": [0.25, 0.5, 1.0]}
      {"features": "task.type=*", "reduce": "argmax"}

  ``min``, ``max`` and ``mean`` reduce to one number, which is binned; ``argmin`` and
  ``argmax`` reduce to the position of the smallest / largest matched feature (in feature order,
  the first on ties) and need no bins: a one-hot such as the task type becomes its category, and
  ``"*.wait"`` with ``argmin`` becomes the least loaded device. A glob that matches more than one
  feature needs a reduction.

**The bin rule.** ``bins`` are strictly increasing edges ``e_0 < e_1 < … < e_{k-1}``, giving
``k + 1`` bins: a value ``v ≤ e_0`` falls in bin 0, ``e_{i-1} < v ≤ e_i`` in bin ``i`` and
``v > e_{k-1}`` in bin ``k`` (:func:`bisect.bisect_left`). So with ``bins: [0]`` the values ≤ 0
go to bin 0 and every positive value to bin 1; with ``bins: [1.0]`` over an expected-completion ÷
SLO feature, bin 0 is "on time" and bin 1 is "late".

**The default feature set** (:data:`DEFAULT_FEATURES`, used when a learner is given none)::

    task.type=*  argmax                      which task type is being decided
    task.difficulty  bins [0.3, 0.6]         easy / medium / hard input
    task.priority  bins [0.5]                normal / high priority
    est:*  min  bins [0.5, 1.0, 2.0]         the soonest any action could answer, ÷ the SLO

These are what decides the reward of one allocation in every shipped scenario: the type decides
which plans can serve the task at all, difficulty decides whether a cheap model answers it
correctly or an accurate (slower, dearer) plan is worth it, priority scales the whole reward, and
the earliest achievable completion says how loaded the cluster is, that is whether a slow plan
would still finish within the SLO, or rejecting is better. They do not grow with the cluster (48
states with two task types), so the table stays learnable within a small budget on any
scenario. On small clusters, per-device waits (``"<device>.wait"``) or the least-loaded device
(``"*.wait"`` with ``argmin``) can show the agent where load builds; the per-scenario choices
live in ``agents/hyperparams/tabular.yml`` (on the shipped scenarios, coarse states learned
better than fine ones within the budget).

The table is capped (:attr:`DiscretiserConfig.max_table_entries` Q-values in all) so that a spec
with too many bins fails at once with a clear message rather than exhausting memory.
"""

from __future__ import annotations

import bisect
import difflib
import fnmatch
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

REDUCTIONS = ("min", "max", "mean", "argmin", "argmax")
"""The reductions a glob spec may use; the last two are categorical (no bins)."""

CATEGORICAL = ("argmin", "argmax")

_SPEC_KEYS = ("features", "reduce", "bins")


class DiscretiserError(ValueError):
    """A discretiser spec that cannot be used with an env's features; the message names it."""


@dataclass(frozen=True)
class FeatureSpec:
    """One digit of the state: a feature (or a reduction over a glob of features) and its bins.

    ``features`` is an exact feature name or a glob; ``reduce`` one of :data:`REDUCTIONS` (or
    ``None`` for a single feature); ``bins`` the strictly increasing edges (empty for
    ``argmin``/``argmax``).
    """

    features: str
    reduce: str | None = None
    bins: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        where = self.describe()
        if not isinstance(self.features, str) or not self.features:
            raise DiscretiserError(f"{where}: 'features' must be a non-empty feature name or glob")
        if self.reduce is not None and self.reduce not in REDUCTIONS:
            raise DiscretiserError(
                f"{where}: 'reduce' must be one of {', '.join(REDUCTIONS)}, got {self.reduce!r}"
            )
        if self.reduce in CATEGORICAL:
            if self.bins:
                raise DiscretiserError(
                    f"{where}: {self.reduce} gives a category (the matched feature's position); "
                    "it takes no 'bins'"
                )
            return
        if not self.bins:
            raise DiscretiserError(f"{where}: 'bins' must list at least one edge")
        if not all(math.isfinite(edge) for edge in self.bins):
            raise DiscretiserError(f"{where}: 'bins' must be finite numbers, got {self.bins}")
        if any(b <= a for a, b in zip(self.bins, self.bins[1:], strict=False)):
            raise DiscretiserError(f"{where}: 'bins' must be strictly increasing, got {self.bins}")

    @classmethod
    def from_dict(cls, raw: Any, where: str = "discretiser") -> FeatureSpec:
        """A spec from its JSON / YAML form, ``{"features": ..., "reduce": ..., "bins": [...]}``."""
        if not isinstance(raw, Mapping):
            raise DiscretiserError(
                f"{where}: expected a mapping like {{features: task.difficulty, bins: [0.5]}}, "
                f"got {raw!r}"
            )
        unknown = sorted(set(raw) - set(_SPEC_KEYS))
        if unknown:
            raise DiscretiserError(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"expected {', '.join(_SPEC_KEYS)}"
            )
        if "features" not in raw:
            raise DiscretiserError(f"{where}: missing 'features' (a feature name or a glob)")
        bins = raw.get("bins") or ()
        if isinstance(bins, (str, bytes)) or not isinstance(bins, Sequence):
            raise DiscretiserError(f"{where}: 'bins' must be a list of numbers, got {bins!r}")
        if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bins):
            raise DiscretiserError(f"{where}: 'bins' must be a list of numbers, got {list(bins)}")
        try:
            return cls(str(raw["features"]), raw.get("reduce"), tuple(float(b) for b in bins))
        except DiscretiserError as exc:
            raise DiscretiserError(f"{where}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"features": self.features}
        if self.reduce is not None:
            out["reduce"] = self.reduce
        if self.bins:
            out["bins"] = list(self.bins)
        return out

    def describe(self) -> str:
        text = f"feature spec {self.features!r}"
        return f"{text} (reduce {self.reduce})" if self.reduce else text

    @property
    def is_glob(self) -> bool:
        return any(ch in self.features for ch in "*?[")


DEFAULT_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("task.type=*", "argmax"),
    FeatureSpec("task.difficulty", bins=(0.3, 0.6)),
    FeatureSpec("task.priority", bins=(0.5,)),
    FeatureSpec("est:*", "min", (0.5, 1.0, 2.0)),
)
"""The feature set of a learner given none; the module docstring says why these."""

MAX_TABLE_ENTRIES = 4_000_000
"""Default cap on states × actions: 32 MB of float64 Q-values (and as much of visit counts)."""


@dataclass(frozen=True)
class DiscretiserConfig:
    """The whole discretiser: its specs, in digit order, and the cap on the table size."""

    features: tuple[FeatureSpec, ...] = DEFAULT_FEATURES
    max_table_entries: int = MAX_TABLE_ENTRIES

    def __post_init__(self) -> None:
        if not self.features:
            raise DiscretiserError("discretiser: expected at least one feature spec")
        if not isinstance(self.max_table_entries, int) or self.max_table_entries < 1:
            raise DiscretiserError(
                f"discretiser: max_table_entries must be a positive integer, "
                f"got {self.max_table_entries!r}"
            )

    @classmethod
    def from_spec(cls, raw: Any) -> DiscretiserConfig:
        """From the hyperparameter form: a list of spec mappings, or a mapping
        ``{"features": [...], "max_table_entries": n}``; ``None`` gives the default."""
        if raw is None:
            return cls()
        if isinstance(raw, DiscretiserConfig):
            return raw
        cap = MAX_TABLE_ENTRIES
        if isinstance(raw, Mapping):
            unknown = sorted(set(raw) - {"features", "max_table_entries"})
            if unknown:
                raise DiscretiserError(
                    f"discretiser: unknown key(s) {', '.join(map(repr, unknown))}; "
                    "expected a list of feature specs, or features and max_table_entries"
                )
            cap = raw.get("max_table_entries", MAX_TABLE_ENTRIES)
            raw = raw.get("features")
        if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
            raise DiscretiserError(f"discretiser: expected a list of feature specs, got {raw!r}")
        specs = tuple(
            FeatureSpec.from_dict(item, f"discretiser[{i}]") for i, item in enumerate(raw)
        )
        return cls(specs, cap)

    def to_spec(self) -> dict[str, Any]:
        """The JSON-safe form :meth:`from_spec` reads back."""
        return {
            "features": [spec.to_dict() for spec in self.features],
            "max_table_entries": self.max_table_entries,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_spec(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DiscretiserConfig:
        try:
            raw = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise DiscretiserError(f"discretiser: not valid JSON ({exc})") from None
        return cls.from_spec(raw)


@dataclass(frozen=True)
class _Digit:
    """A spec resolved against feature names: which observation entries, and how many bins."""

    indices: tuple[int, ...]
    reduce: str | None
    edges: tuple[float, ...]
    size: int
    select: slice | np.ndarray  # the indices as a slice when contiguous (a cheaper read)


class Discretiser:
    """A :class:`DiscretiserConfig` bound to one env's feature names: observation → state index.

    Raises :class:`DiscretiserError` at construction when a spec matches no feature (naming the
    closest feature names), when a glob matching several features has no reduction, or when the
    table (``n_states × n_actions``) would exceed the config's cap.
    """

    def __init__(self, config: DiscretiserConfig, feature_names: Sequence[str], n_actions: int):
        self.config = config
        self.feature_names = list(feature_names)
        self.digits = [self._resolve(spec) for spec in config.features]
        self.radices = tuple(d.size for d in self.digits)
        self.n_states = math.prod(self.radices)
        entries = self.n_states * n_actions
        if entries > config.max_table_entries:
            sizes = " × ".join(
                f"{d.size} ({s.features})" for d, s in zip(self.digits, self.features, strict=True)
            )
            raise DiscretiserError(
                f"discretiser: {sizes} = {self.n_states} states × {n_actions} actions = "
                f"{entries} Q-values, over the cap of {config.max_table_entries}; "
                "use fewer bins or features (or raise max_table_entries)"
            )
        strides = [1] * len(self.radices)
        for i in range(len(self.radices) - 2, -1, -1):
            strides[i] = strides[i + 1] * self.radices[i + 1]
        self.strides = tuple(strides)
        self._plan = [(d, stride) for d, stride in zip(self.digits, self.strides, strict=True)]

    @property
    def features(self) -> tuple[FeatureSpec, ...]:
        return self.config.features

    def state(self, observation: np.ndarray) -> int:
        """The state index of an observation, in ``range(n_states)``."""
        index = 0
        for digit, stride in self._plan:
            index += _bin_of(digit, observation) * stride
        return index

    def digits_of(self, state: int) -> tuple[int, ...]:
        """The per-spec bin indices of a state index (for explaining a state)."""
        return tuple(int(i) for i in np.unravel_index(state, self.radices))

    def _resolve(self, spec: FeatureSpec) -> _Digit:
        names = self.feature_names
        if spec.is_glob:
            indices = tuple(i for i, n in enumerate(names) if fnmatch.fnmatchcase(n, spec.features))
        else:
            indices = tuple(i for i, n in enumerate(names) if n == spec.features)
        if not indices:
            close = difflib.get_close_matches(spec.features, names, n=3, cutoff=0.4)
            hint = f"; closest: {', '.join(close)}" if close else ""
            kind = "glob matches" if spec.is_glob else "names"
            raise DiscretiserError(
                f"discretiser: {spec.describe()} {kind} no observation feature{hint}"
            )
        if len(indices) > 1 and spec.reduce is None:
            raise DiscretiserError(
                f"discretiser: {spec.describe()} matches {len(indices)} features "
                f"({names[indices[0]]}, ...); add reduce: one of {', '.join(REDUCTIONS)}"
            )
        size = len(indices) if spec.reduce in CATEGORICAL else len(spec.bins) + 1
        contiguous = indices == tuple(range(indices[0], indices[-1] + 1))
        select = slice(indices[0], indices[-1] + 1) if contiguous else np.array(indices, np.intp)
        return _Digit(indices, spec.reduce, spec.bins, size, select)


def _bin_of(digit: _Digit, observation: np.ndarray) -> int:
    """The bin index of one digit: the categorical position, or the edge rule of the docstring."""
    reduce = digit.reduce
    if len(digit.indices) == 1:
        if reduce in CATEGORICAL:
            return 0
        value = float(observation[digit.indices[0]])
    else:
        values = observation[digit.select]
        if reduce == "argmax":
            return int(values.argmax())
        if reduce == "argmin":
            return int(values.argmin())
        if reduce == "min":
            value = float(values.min())
        elif reduce == "max":
            value = float(values.max())
        else:
            value = float(values.mean())
    return bisect.bisect_left(digit.edges, value)
