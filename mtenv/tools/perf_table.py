"""The table of ``mtenv perf`` (:mod:`mtenv.tools.perf`): its rows, each a ratio of measured
medians with its target, built from a report and nothing else (:func:`build_rows`), and the
table as text (:func:`format_report`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mtenv.core.inference import TORCH_THREADS_ENV

TARGETS: dict[str, tuple[str, float]] = {
    "memoized_over_cartpole": (">=", 0.5),
    "live_over_memoized": (">=", 0.5),
    "batched_over_cartpole": (">=", 3.0),  # at K = 64
    "batched_live_over_memoized": (">=", 0.7),
    "large_over_quickstart": (">=", 0.5),
    "memory_growth": ("<", 0.05),
    "train_batched_over_subproc": (">=", 2.0),
}
TARGET_K = 64
"""The batch size the batched-env target is about."""


# --- the rows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Measured:
    """The medians measured and, for each run that could not be, why."""

    rates: dict[str, dict[str, Any]]
    missing: dict[str, str]

    def ratio(
        self,
        key: str,
        label: str,
        parts: list[tuple[str, str]],
        target: bool = True,
        share_of: str | None = None,
    ) -> dict[str, Any]:
        """A row: ``parts[0]`` ÷ ``parts[1]`` (run names with their captions), every part's rate
        beside it; ``share_of`` names the run whose forward-pass share is the note."""
        absent = [
            self.missing.get(name, "not measured")
            for name, _ in parts[:2]
            if name not in self.rates
        ]
        shown = [
            [caption, self.rates[name]["steps_per_s"], "/s"]
            for name, caption in parts
            if name in self.rates
        ]
        ratio = None
        if not absent:
            ratio = self.rates[parts[0][0]]["steps_per_s"] / self.rates[parts[1][0]]["steps_per_s"]
        note = absent[0] if absent else None
        share = self.rates.get(share_of or "", {}).get("forward_share")
        if note is None and share is not None:
            note = f"{share:.0%} of live time in forward passes"
        return _row(key, label, ratio, shown, target, note)


def _row(
    key: str, label: str, ratio: float | None, shown: list, target: bool, note: str | None
) -> dict[str, Any]:
    op, bound = TARGETS[key] if target else (None, None)
    met = None
    if ratio is not None and op is not None:
        met = bool(ratio >= bound) if op == ">=" else bool(ratio < bound)
    return {
        "key": key,
        "label": label,
        "ratio": None if ratio is None else round(ratio, 4),
        "target": None if op is None else [op, bound],
        "met": met,
        "rates": shown,
        "note": note,
    }


def build_rows(
    rates: dict[str, dict[str, Any]],
    missing: dict[str, str],
    memory: dict[str, Any],
    batch_sizes: tuple[int, ...] | list[int],
) -> list[dict[str, Any]]:
    """The table's rows from the measured medians, in the module docstring's order (pure)."""
    m = _Measured(rates, missing)
    cart = ("cartpole", "CartPole-v1")
    memo = ("quickstart memoized", "quickstart memoized")
    k_max = max(batch_sizes)
    rows = [
        m.ratio("memoized_over_cartpole", "quickstart memoized ÷ CartPole-v1", [memo, cart]),
        m.ratio(
            "live_over_memoized",
            "live ÷ memoized, one env",
            [("quickstart live", "live"), memo],
            share_of="quickstart live",
        ),
    ]
    rows += [
        m.ratio(
            "batched_over_cartpole",
            f"batched K={k} (all envs) ÷ CartPole-v1",
            [(f"batched memoized K={k}", f"K={k}"), cart],
            target=k == TARGET_K,
        )
        for k in batch_sizes
    ]
    rows.append(
        m.ratio(
            "batched_live_over_memoized",
            f"batched K={k_max}, live ÷ memoized",
            [(f"batched live K={k_max}", "live"), (f"batched memoized K={k_max}", "memoized")],
            share_of=f"batched live K={k_max}",
        )
    )
    rows.append(
        m.ratio(
            "large_over_quickstart",
            "large_cluster ÷ quickstart, per step",
            [("large_cluster memoized", "large_cluster"), memo],
        )
    )
    then, end = memory["peak_rss_mb"]
    rows.append(
        _row(
            "memory_growth",
            "peak RSS growth after the first tenth",
            memory["peak_growth"],
            [["after 1/10", then, "MB"], ["at the end", end, "MB"]],
            True,
            f"{memory['tasks']:,} tasks of {memory['scenario']}, "
            f"{memory['steps_per_s']:,.0f} steps/s",
        )
    )
    rows.append(
        m.ratio(
            "train_batched_over_subproc",
            "MaskablePPO learn, batched ÷ subproc",
            [
                ("train maskable batched", "batched"),
                ("train maskable subproc", "subproc"),
                ("train ppo cartpole", "PPO on CartPole-v1"),
            ],
        )
    )
    return rows


# --- the table ---------------------------------------------------------------------------------


def format_report(report: dict[str, Any]) -> str:
    """The report as one table: a row per ratio, its target and ✓/✗, the rates beside it."""
    s, m = report["settings"], report["machine"]
    threads = f"{m['torch_threads']} intra-op thread{'s' if m['torch_threads'] != 1 else ''}"
    env = m["torch_threads_env"]
    ks = ", ".join(str(k) for k in s["batch_sizes"])
    lines = [
        f"mtenv perf · one process · each rate the median of {s['repeats']} run(s), "
        "the rows' runs interleaved",
        f"{s['steps']:,} env steps a run · batched K = {ks} · learn {s['train_steps']:,} steps × "
        f"{s['train_envs']} envs · memory episode {s['tasks']:,} tasks",
        f"{m['cpu']} · {m['cores']} cores · python {m['python']} · torch {m['torch']} "
        f"({threads}; {TORCH_THREADS_ENV}={env if env is not None else 'unset'})",
        f"{'#':<3}{'ratio':<40}{'value':>8}  {'target':<8}{'':2}measured",
    ]
    for i, row in enumerate(report["rows"]):
        number = _row_number(report["rows"], i)
        value = "n/a" if row["ratio"] is None else _value(row)
        target, mark = "", ""
        if row["target"] is not None:
            op, bound = row["target"]
            target = f"{'≥' if op == '>=' else '<'} {_bound(row['key'], bound)}"
            mark = "" if row["met"] is None else ("✓" if row["met"] else "✗")
        rates = " · ".join(_amount(caption, value, unit) for caption, value, unit in row["rates"])
        if row["note"]:
            rates = f"{rates} · {row['note']}" if rates else row["note"]
        lines.append(f"{number:<3}{row['label']:<40}{value:>8}  {target:<8}{mark:2}{rates}")
    return "\n".join(lines)


def _row_number(rows: list[dict], i: int) -> str:
    """1, 2, 3a, 3b, ... : the batched rows share one number, as in the module docstring."""
    keys = list(dict.fromkeys(row["key"] for row in rows))
    key = rows[i]["key"]
    number = str(keys.index(key) + 1)
    same = [j for j, row in enumerate(rows) if row["key"] == key]
    return number if len(same) == 1 else number + "abcdefgh"[same.index(i)]


def _amount(caption: str, value: float, unit: str) -> str:
    return f"{caption} {value:,.0f}/s" if unit == "/s" else f"{caption} {value:,.1f} {unit}"


def _value(row: dict) -> str:
    return f"{row['ratio']:+.1%}" if row["key"] == "memory_growth" else f"{row['ratio']:.3f}"


def _bound(key: str, bound: float) -> str:
    return f"{bound:.0%}" if key == "memory_growth" else f"{bound:g}"
