"""Scenario files: finding shipped scenarios, reading YAML, ``extends``, and error messages.

A bad file raises :class:`~mtenv.core.schema.ScenarioError` with one line per problem, each
naming the file, the field path, what was expected and what was found::

    quickstart.yaml: devices[1].memory_gb: expected a number > 0, got -4

Shipped scenarios live in the ``mtenv.scenarios`` package data and are found by name.

A file may come from someone else: it is read within bounds (:mod:`mtenv.io.safe_yaml`), bad
values are quoted only as short excerpts, a file named by ``extends`` that is not a valid
scenario is refused without quoting any of it, and :func:`load_scenario` also builds the arrival
process (reading a trace), so that what loads is what the env can be built from.
"""

from __future__ import annotations

import copy
import os
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import TypeAdapter, ValidationError

from mtenv.core.feasibility import reference_problems, validated_parts
from mtenv.core.plans import Plan
from mtenv.core.schema import (
    PlanConfig,
    Scenario,
    ScenarioError,
)
from mtenv.io.safe_yaml import YamlProblem, read_yaml
from mtenv.messages import excerpt, unknown_name

if TYPE_CHECKING:
    from mtenv.zoo import Zoo


def shipped_scenarios() -> dict[str, Path]:
    """Names of the scenarios shipped in the package, mapped to their files."""
    root = resources.files("mtenv.scenarios")
    found = {}
    for entry in root.iterdir():
        if entry.name.endswith(".yaml"):
            found[entry.name[: -len(".yaml")]] = Path(str(entry))
    return dict(sorted(found.items()))


def resolve_scenario_path(name_or_path: str | Path) -> Path:
    """The file behind a scenario name (``quickstart``, ``cold-start``) or path."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            raise ScenarioError(f"{text}: no such scenario file")
        return path
    found = _shipped_path(text)
    if found is None:
        raise ScenarioError(f"scenario: {unknown_name('scenario', text, shipped_scenarios())}")
    return found


def _shipped_path(name: str) -> Path | None:
    """The shipped file named ``name`` (hyphens and underscores alike), or None."""
    by_key = {key.replace("-", "_"): file for key, file in shipped_scenarios().items()}
    return by_key.get(name.replace("-", "_"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and validate a scenario by shipped name or by file path, resolving ``extends``.

    Everything the env needs of the file is checked here, the arrival process included (a
    trace is read and parsed), so a scenario that loads is one the env can be built from;
    ``mtenv scenarios validate`` is this function."""
    path = resolve_scenario_path(name_or_path)
    label = _label(path)
    scenario = parse_scenario(_read_raw(path), label=label, source=str(path))
    check_arrivals(scenario, label)
    return scenario


def check_arrivals(scenario: Scenario, label: str = "<scenario>") -> None:
    """Build the scenario's arrival process as the env does (reading its trace, if any), or
    raise :class:`ScenarioError` saying why it cannot be built."""
    from mtenv.core.workload import make_arrivals

    base = Path(scenario.source).parent if scenario.source else None
    try:
        make_arrivals(scenario.workload.arrivals, base)
    except ScenarioError as exc:
        raise ScenarioError(f"{label}: {exc}") from None
    except ValueError as exc:  # pragma: no cover - the schema's bounds come first
        raise ScenarioError(f"{label}: workload.arrivals: {exc}") from None


def _label(path: Path) -> str:
    """How messages name a scenario file: shipped ones by file name, others by path."""
    return path.name if _is_shipped(path) else str(path)


def _read_raw(path: Path) -> dict[str, Any]:
    """The mapping a scenario file holds, before ``extends`` and validation."""
    label = _label(path)
    try:
        raw = read_yaml(path)
    except YamlProblem as exc:
        raise ScenarioError(f"{label}: {exc}") from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{label}: expected a mapping of fields, got {type(raw).__name__}")
    return raw


def parse_scenario(
    raw: dict[str, Any], *, label: str = "<scenario>", source: str | None = None
) -> Scenario:
    """Validate a scenario given as a mapping; ``label`` prefixes every error line.

    An ``extends`` key is resolved first (relative paths against ``source``'s folder, or the
    working directory without one); the input mapping is never modified."""
    if EXTENDS in raw:
        origin = Path(source) if source else None
        raw = _resolve_extends(raw, origin, label, (origin.resolve(),) if origin else ())
    try:
        return Scenario.model_validate({**raw, "source": source})
    except ValidationError as exc:
        problems = _format_errors(exc)
        if len(problems) <= _MAX_PROBLEMS and any(err["loc"] for err in exc.errors()):
            # Field errors stop pydantic before the cross-references: check those here too, so
            # that one run reports every problem of the file.
            problems += [p for p in reference_problems(**validated_parts(raw)) if p not in problems]
        if len(problems) > _MAX_PROBLEMS:
            # Only the first few: a long list of bad items would otherwise flood the screen.
            more = len(problems) - _MAX_PROBLEMS
            problems = [*problems[:_MAX_PROBLEMS], f"... and {more} more problem(s)"]
        raise ScenarioError("\n".join(f"{label}: {line}" for line in problems)) from None


_MAX_PROBLEMS = 10
"""Most problems listed for one file (then a count of the rest)."""

# --- extends -------------------------------------------------------------------------------

EXTENDS = "extends"
_REPLACED_WHOLE = {("workload", "arrivals")}


def merge_scenario_mappings(
    base: dict[str, Any], override: dict[str, Any], _at: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``base`` with ``override`` laid over it, as ``extends`` does: mappings merge recursively,
    lists and scalars replace, and ``workload.arrivals`` replaces whole (its fields depend on its
    process, so merging a Gamma block into a Poisson one would only make a bad mix). Neither
    input is modified."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        here = (*_at, str(key))
        below = out.get(key)
        if isinstance(value, dict) and isinstance(below, dict) and here not in _REPLACED_WHOLE:
            out[key] = merge_scenario_mappings(below, value, here)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_extends(
    raw: dict[str, Any], origin: Path | None, label: str, chain: tuple[Path, ...]
) -> dict[str, Any]:
    """``raw`` with its ``extends`` chain merged in, the ``extends`` key gone. ``origin`` is the
    file ``raw`` came from (None: the working directory); ``chain`` the files above it, for
    cycle detection. The result's name is the child's: its ``name``, else its file's stem."""
    if EXTENDS not in raw:
        return raw
    child = {key: value for key, value in raw.items() if key != EXTENDS}
    base_path = _extends_target(raw[EXTENDS], origin, label)
    key = base_path.resolve()
    if key in chain:
        loop = " -> ".join(str(p) for p in (*chain, key)[list(chain).index(key) :])
        raise ScenarioError(f"{label}: extends: cycle of scenario files: {loop}")
    base = _resolve_extends(
        _read_base(base_path, label), base_path, _label(base_path), (*chain, key)
    )
    _check_base(base, base_path, label)
    here = origin.parent if origin else Path.cwd()
    merged = merge_scenario_mappings(_rebase_trace(base, base_path.parent, here), child)
    if "name" not in child and origin is not None:
        merged["name"] = origin.stem
    return merged


def _not_a_scenario(base_path: Path, label: str) -> ScenarioError:
    # Nothing of the file is quoted: it may be any YAML file, named by mistake or on purpose.
    return ScenarioError(
        f"{label}: extends: {str(base_path)!r} is not a valid scenario file "
        "(check it with `mtenv scenarios validate`)"
    )


def _read_base(base_path: Path, label: str) -> dict[str, Any]:
    """The mapping of the file ``extends`` names; reading errors are not quoted."""
    try:
        return _read_raw(base_path)
    except ScenarioError:
        raise _not_a_scenario(base_path, label) from None


def _check_base(base: dict[str, Any], base_path: Path, label: str) -> None:
    """A base must be a valid scenario on its own (its ``extends`` resolved): the errors of a
    merged result would otherwise quote the keys and values of any YAML file it names."""
    try:
        Scenario.model_validate({**base, "source": str(base_path)})
    except (ValidationError, ValueError):
        raise _not_a_scenario(base_path, label) from None


def _extends_target(ref: Any, origin: Path | None, label: str) -> Path:
    """The file an ``extends`` value names: a path (has a slash or a .yaml suffix) relative to
    the extending file, else a shipped scenario name."""
    if not isinstance(ref, str) or not ref.strip():
        raise ScenarioError(
            f"{label}: extends: expected a shipped scenario name or a file path, got {excerpt(ref)}"
        )
    as_path = Path(ref).expanduser()
    if "/" in ref or "\\" in ref or as_path.suffix in {".yaml", ".yml"}:
        if not as_path.is_absolute():
            as_path = (origin.parent if origin else Path.cwd()) / as_path
        if not as_path.is_file():
            raise ScenarioError(f"{label}: extends: no such scenario file {excerpt(str(as_path))}")
        return as_path
    found = _shipped_path(ref)
    if found is None:
        raise ScenarioError(
            f"{label}: extends: {unknown_name('scenario', ref, shipped_scenarios())}"
        )
    return found


def _rebase_trace(raw: dict[str, Any], base_dir: Path, child_dir: Path) -> dict[str, Any]:
    """``raw`` with a relative trace path made relative to ``child_dir`` instead of
    ``base_dir``, so an inherited trace arrival block still finds its file."""
    arrivals = (
        raw.get("workload", {}).get("arrivals") if isinstance(raw.get("workload"), dict) else None
    )
    if not isinstance(arrivals, dict) or arrivals.get("process") != "trace":
        return raw
    trace = arrivals.get("path")
    if not isinstance(trace, str) or Path(trace).is_absolute():
        return raw
    target = (base_dir / trace).resolve()
    try:
        rebased = os.path.relpath(target, child_dir.resolve())
    except ValueError:  # another drive (Windows): no relative path exists
        rebased = str(target)
    workload = {**raw["workload"], "arrivals": {**arrivals, "path": rebased}}
    return {**raw, "workload": workload}


# --- printing ------------------------------------------------------------------------------


def scenario_yaml(scenario: Scenario) -> str:
    """The resolved scenario as YAML with every default written out. Loading the text back
    gives an equal :class:`Scenario` (bar ``source``, which records where it was loaded)."""
    data = scenario.model_dump(mode="python", exclude={"source"})
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _is_shipped(path: Path) -> bool:
    return path.resolve().parent == Path(str(resources.files("mtenv.scenarios"))).resolve()


_EXPECTATIONS = {
    "greater_than": "expected a number > {gt}",
    "greater_than_equal": "expected a number >= {ge}",
    "less_than_equal": "expected a number <= {le}",
    "less_than": "expected a number < {lt}",
    "finite_number": "expected a finite number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "missing": "required field is missing",
    "extra_forbidden": "unknown field",
    "too_short": "expected at least {min_length} item(s)",
    "too_long": "expected at most {max_length} item(s)",
    "string_too_short": "expected at least {min_length} character(s)",
    "string_too_long": "expected at most {max_length} characters",
    "literal_error": "expected {expected}",
    "union_tag_invalid": "expected one of {expected_tags}",
    "union_tag_not_found": "expected a 'process' field naming the arrival process",
}


def _format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        loc = _format_loc(err["loc"])
        ctx = err.get("ctx", {})
        if err["type"] == "value_error":
            # Our own validators phrase their messages as "field: expected ..., got ...", the
            # field relative to the block that raised; prefix the block's own path.
            message = str(ctx["error"]) if "error" in ctx else err["msg"]
            lines += [_join_path(loc, m) for m in message.splitlines()]
            continue
        if err["type"] == "invalid_key" or err["loc"][-1:] == ("[key]",):
            # A mapping key that is not a string: name the mapping, show the key.
            where = _format_loc(err["loc"][: -1 if err["type"] == "invalid_key" else -2])
            text = f"expected field names to be strings, got {excerpt(err['input'])}"
            lines.append(f"{where}: {text}" if where else text)
            continue
        got = err["input"]
        if err["type"] == "union_tag_invalid":
            # Point at the discriminating field itself and show its value, not the whole block.
            field_name = str(ctx["discriminator"]).strip("'")
            loc, got = f"{loc}.{field_name}" if loc else field_name, ctx["tag"]
        elif err["type"] == "plan_kind" and isinstance(got, dict):
            loc, got = f"{loc}.kind", got.get("kind")
        template = _EXPECTATIONS.get(err["type"])
        bounds = {k: plain_number(v) for k, v in ctx.items()}
        text = template.format(**bounds) if template else err["msg"]
        if err["type"] not in {"missing", "extra_forbidden"}:
            text += f", got {excerpt(got)}"
        lines.append(f"{loc}: {text}" if loc else text)
    return lines


_RELATIVE_FIELD = re.compile(r"^[A-Za-z_][\w.\[\]]*: ")


def _join_path(loc: str, message: str) -> str:
    """``message`` (maybe ``"field: ..."`` relative to ``loc``) prefixed with ``loc``."""
    if not loc:
        return message
    if _RELATIVE_FIELD.match(message):
        return f"{loc}.{message}"
    return f"{loc}: {message}"


def plain_number(value: Any) -> Any:
    """A bound for a message: ``0`` rather than ``0.0``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_UNION_TAGS = {"poisson", "gamma", "on_off", "diurnal", "spike", "trace"} | {
    "single",
    "ensemble",
    "cascade",
    "multitask",
}


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS:
            continue  # the discriminated union's branch name adds nothing for the reader
        elif not _PLAIN_KEY.fullmatch(str(part)) or len(str(part)) > 40:
            # An odd key (spaces, line breaks) stays visible, short and on one line.
            out += f"[{excerpt(part)}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def parse_plans(
    raw: list[dict[str, Any]], label: str = "plans", zoo: Zoo | None = None
) -> list[Plan]:
    """Plans written as in a scenario's ``plans`` list, validated and built on ``zoo``
    (default: digits)."""
    from mtenv.zoo import get_zoo

    try:
        configs = TypeAdapter(list[PlanConfig]).validate_python(raw)
    except ValidationError as exc:
        raise ScenarioError("\n".join(f"{label}{line}" for line in _format_errors(exc))) from None
    return [config.build(zoo if zoo is not None else get_zoo()) for config in configs]
