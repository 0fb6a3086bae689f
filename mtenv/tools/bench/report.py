"""The report of a benchmark: ``summary.csv``, ``summary.md``, ``summary.tex`` and figures.

:func:`write_report` reads ``OUT/results.jsonl`` (and ``OUT/manifest.json`` when present, for
the command line named in the captions), computes every statistic with
:func:`mtenv.tools.bench.stats.analyse`, and writes, each file atomically (a temporary file, then
``os.replace``):

* ``summary.csv``: one row per (scenario, policy) (``statistic = return``): seeds, mean return
  and its Student-t 95 % interval, the normalised mean, the paired difference to the reference
  with its interval, and the means of the headline metrics; then per policy the across-scenario
  rows ``iqm`` (of normalised scores) and ``p_improvement`` (over the reference), each with its
  stratified bootstrap interval. Full precision; empty where undefined.
* ``summary.md``: an overview (a row per scenario), a table per scenario, the across-scenario
  table, the figures and notes. The numbers are the CSV's, rounded.
* ``summary.tex``: the same tables for a paper (booktabs; best value per column in bold, the
  clairvoyant oracle left out of that contest).
* ``figures/*.png`` and ``*.pdf`` (:mod:`mtenv.tools.bench.figures`); without matplotlib the
  tables are still written and the figures are skipped with the one-line install hint.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtenv.extras import missing_extra_message
from mtenv.tools.bench import figures, records
from mtenv.tools.bench.stats import (
    BEST_BASELINE,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    HEADLINE,
    ORACLE_ROLE,
    Analysis,
    Estimate,
    ScenarioResult,
    analyse,
)

SUMMARY_CSV, SUMMARY_MD, SUMMARY_TEX = "summary.csv", "summary.md", "summary.tex"
MANIFEST = "manifest.json"
CSV_COLUMNS = (
    "statistic",
    "scenario",
    "policy",
    "role",
    "reference",
    "n",
    "mean",
    "ci_low",
    "ci_high",
    "normalised_mean",
    "diff_mean",
    "diff_ci_low",
    "diff_ci_high",
    "diff_n",
    "diff_excludes_zero",
    *HEADLINE,
    "n_scenarios",
)
"""``statistic`` is ``return`` (a scenario's row; ``n`` = seeds), ``iqm`` (``n`` = pooled
(scenario, seed) samples) or ``p_improvement`` (``n`` = scenarios); ``scenario`` is ``all`` for
the last two."""
ALL = "all"
METRIC_LABELS = {
    "accuracy": ("accuracy", "accuracy", "max"),
    "slo_attainment": ("SLO attainment", "SLO att.", "max"),
    "latency_p95_ms": ("p95 latency (ms)", "p95 (ms)", "min"),
    "cost_usd": ("cost (USD)", "cost (USD)", "min"),
    "reject_rate": ("reject rate", "reject rate", "min"),
}
"""Per headline metric: its Markdown and LaTeX headers and which way is better."""


def write_report(
    out: Path, reference: str | None = None, *, log: Callable[[str], None] | None = None
) -> list[Path]:
    """Write the report of the benchmark in ``out`` (see the module docstring); returns the
    paths written. ``reference`` is a policy name, or ``None`` for each scenario's best
    baseline. Notes (skipped figures, a missing extra, unreadable lines) go to ``log``
    (default: standard error). Raises ``FileNotFoundError`` without ``results.jsonl`` and
    ``ValueError`` for a reference that is not in the results."""
    out = Path(out)
    log = log or (lambda line: print(line, file=sys.stderr))
    path = out / records.RESULTS
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run a benchmark sweep into {out} first")
    found = records.read(path)
    analysis = analyse(found.episodes, reference)
    notes = [*found.skipped, *analysis.notes]
    if found.failures:
        cells = sorted({records.cell_of(f) for f in found.failures})
        shown = ", ".join(f"{s}/{p}/seed {k}" for s, p, k in cells[:10])
        notes.append(
            f"{len(cells)} cell(s) failed and are left out: {shown}"
            + (" …" if len(cells) > 10 else "")
        )
    plan = figures.plan(analysis)
    plt_error = None
    if any(reason is None for reason in plan.values()):
        try:
            figures.pyplot()
        except ImportError as exc:
            plt_error = missing_extra_message(exc) or f"{exc.name or 'matplotlib'}: {exc}"
    context = Context(_command(out / MANIFEST), len(found.episodes), notes, plan, plt_error)

    written = [
        _atomic_write(out / SUMMARY_CSV, summary_csv(analysis)),
        _atomic_write(out / SUMMARY_MD, summary_markdown(analysis, context)),
        _atomic_write(out / SUMMARY_TEX, summary_latex(analysis, context)),
    ]
    for note in notes:
        log(f"note: {note}")
    for name, reason in plan.items():
        if reason is not None:
            log(f"figure {name} skipped: {reason}")
    if plt_error is not None:
        log(f"figures not drawn: {plt_error}")
    else:
        written += figures.draw(analysis, out / "figures")
    return written


@dataclass
class Context:
    """What the tables say about where their numbers come from."""

    command: str | None
    episodes: int
    notes: list[str] = field(default_factory=list)
    figures: dict[str, str | None] = field(default_factory=dict)
    figures_error: str | None = None


def _command(manifest: Path) -> str | None:
    """The sweep's command line from its manifest (``command``: a string or argv list, or
    ``argv``: the arguments of ``mtenv bench`` or of ``mtenv``), ``None`` when there is none
    or it cannot be read."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    value = data.get("command", data.get("argv"))
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        lead = (
            [] if value[0] == "mtenv" else ["mtenv"] if value[0] == "bench" else ["mtenv", "bench"]
        )
        return shlex.join(lead + value)
    return value if isinstance(value, str) else None


def _atomic_write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


# --- summary.csv -------------------------------------------------------------------------------


def csv_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """The rows of ``summary.csv`` as dicts of floats, ints and strings (NaN where undefined)."""
    rows: list[dict[str, Any]] = []
    for s in analysis.scenarios.values():
        for p, r in s.policies.items():
            d = r.difference
            rows.append(
                {
                    "statistic": "return",
                    "scenario": s.name,
                    "policy": p,
                    "role": r.role,
                    "reference": s.reference or "",
                    "n": r.returns.n,
                    "mean": r.returns.value,
                    "ci_low": r.returns.low,
                    "ci_high": r.returns.high,
                    "normalised_mean": r.normalised,
                    "diff_mean": d.value if d else math.nan,
                    "diff_ci_low": d.low if d else math.nan,
                    "diff_ci_high": d.high if d else math.nan,
                    "diff_n": d.n if d else "",
                    "diff_excludes_zero": int(d.excludes_zero) if d else "",
                    **r.metrics,
                    "n_scenarios": "",
                }
            )
    for a in analysis.aggregates:
        role = analysis.roles.get(a.policy, "reference")
        stats = [("iqm", a.iqm, a.scenarios)]
        if a.improvement is not None:
            stats.append(("p_improvement", a.improvement, a.improvement.n))
        for name, e, scenarios in stats:
            rows.append(
                {
                    "statistic": name,
                    "scenario": ALL,
                    "policy": a.policy,
                    "role": role,
                    "reference": analysis.reference,
                    "n": e.n,
                    "mean": e.value,
                    "ci_low": e.low,
                    "ci_high": e.high,
                    "n_scenarios": scenarios,
                }
            )
    return rows


def summary_csv(analysis: Analysis) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(analysis):
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    return value


# --- tables, rendered twice --------------------------------------------------------------------


@dataclass
class Cell:
    """One table cell: a number (``text``), optionally ``± pm``, a mark for an interval that
    excludes 0, and the value that competes for bold (``None``: does not compete)."""

    text: str
    pm: str | None = None
    mark: bool = False
    value: float | None = None
    bold: bool = False


@dataclass
class Table:
    title: str
    caption: str
    label: str
    headers: list[tuple[str, str]]  # (Markdown, LaTeX)
    better: list[str | None]  # per column: "max", "min" or None (no bold)
    groups: list[list[list[Cell]]]  # groups of rows; bold is decided per group

    def decide_bold(self) -> None:
        for rows in self.groups:
            for j, way in enumerate(self.better):
                values = [r[j].value for r in rows if r[j].value is not None]
                values = [v for v in values if math.isfinite(v)]
                if way is None or not values:
                    continue
                best = max(values) if way == "max" else min(values)
                for r in rows:
                    r[j].bold = r[j].value is not None and r[j].value == best


def _fixed(value: float, decimals: int, sign: bool = False) -> str:
    if not math.isfinite(value):
        return "–"
    return f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"


def _significant(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits: fixed notation, or scientific below
    10⁻³ and from 10⁶ (``6.01e-07``)."""
    if not math.isfinite(value):
        return "–"
    if value == 0:
        return "0"
    if not 1e-3 <= abs(value) < 1e6:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{max(0, digits - 1 - math.floor(math.log10(abs(value))))}f}"


def _decimals(scale: float) -> int:
    """Decimals for returns of this magnitude."""
    return 1 if not math.isfinite(scale) or scale >= 10 else 2 if scale >= 1 else 3


def _estimate(e: Estimate | None, decimals: int, difference: bool = False) -> Cell:
    """``mean ± half-width``; a ``difference`` is signed and marked where its interval
    excludes 0."""
    if e is None:
        return Cell("–")
    text = _fixed(e.value, decimals, difference)
    half = (e.high - e.low) / 2
    pm = _fixed(half, decimals) if math.isfinite(half) else None
    return Cell(text, pm, difference and e.excludes_zero, _float(text))


def _competing(cell: Cell, role: str) -> Cell:
    """The clairvoyant oracle is a bound, not a contestant for bold."""
    if role == ORACLE_ROLE:
        cell.value = None
    return cell


def _metric_cell(name: str, value: float) -> Cell:
    ratio = name in ("accuracy", "slo_attainment", "reject_rate")
    return _number(_fixed(value, 3) if ratio else _significant(value))


def reference_label(analysis: Analysis) -> str:
    return "best baseline" if analysis.reference == BEST_BASELINE else analysis.reference


def tables(analysis: Analysis, context: Context) -> list[Table]:
    """The overview, per-scenario and across-scenario tables, best values marked bold."""
    ref = reference_label(analysis)
    source = f" Command: {context.command}." if context.command else ""
    result = [
        _overview(
            analysis,
            f"{_COMMON} Δ: difference to the reference ({ref}), paired by seed; "
            f"* where its 95 % interval excludes 0.{source}",
        ),
        _per_scenario(
            analysis,
            f"{_COMMON} Normalised: 0 = random's mean return (else the "
            "lowest policy mean), 1 = the oracle's (else the highest). Δ: difference "
            f"to the reference ({ref}), paired by seed; * where its 95 % interval "
            "excludes 0. Bold: the best per column within a scenario, the clairvoyant "
            f"oracle excluded.{source}",
        ),
        _across(
            analysis,
            "Normalised scores per (scenario, seed) pooled: interquartile mean "
            "(IQM), and the probability that a seed of the policy beats a seed of the "
            f"reference ({ref}) on the same scenario, averaged over scenarios (ties count ½); "
            "95 % CIs by stratified bootstrap over seeds within scenarios "
            f"({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}); after Agarwal et al. "
            f"(2021). Bold: the best, the oracle excluded.{source}",
            ref,
        ),
    ]
    for t in result:
        t.decide_bold()
    return result


_COMMON = (
    "One sample per (scenario, policy, seed): the mean return of that seed's episodes; "
    "± is the Student-t 95 % half-width over seeds."
)


def _scenario_decimals(s: ScenarioResult) -> int:
    return _decimals(max((abs(r.returns.value) for r in s.policies.values()), default=0))


def _overview(analysis: Analysis, caption: str) -> Table:
    """A row per scenario: its best baseline, every other policy, their differences."""
    others = [p for p in analysis.policies if analysis.roles[p] != "baseline"]
    contenders = [p for p in others if analysis.roles[p] != ORACLE_ROLE]
    rows = []
    for s in analysis.scenarios.values():
        d = _scenario_decimals(s)
        row = [Cell(s.name), Cell("–")]
        if s.best_baseline is not None:
            best = s.policies[s.best_baseline].returns
            row[1] = Cell(f"{s.best_baseline} {_fixed(best.value, d)}", _estimate(best, d).pm)
        missing = Cell("–")
        row += [_estimate(s.policies[p].returns, d) if p in s.policies else missing for p in others]
        row += [
            _estimate(s.policies[p].difference, d, difference=True) if p in s.policies else missing
            for p in contenders
        ]
        rows.append(row)
    headers = [("scenario", "scenario"), ("best baseline", "best baseline")]
    headers += [(p, _tex(p)) for p in others]
    headers += [(f"{p} − ref.", f"{_tex(p)} $-$ ref.") for p in contenders]
    return Table(
        "Overview",
        f"Mean return per scenario. {caption}",
        "tab:bench-overview",
        headers,
        [None] * len(headers),
        [rows],
    )


def _per_scenario(analysis: Analysis, caption: str) -> Table:
    """A group of rows per scenario: every policy's return, difference and metrics."""
    headers = [
        ("policy", "policy"),
        ("seeds", "seeds"),
        ("return", "return"),
        ("normalised", "norm."),
        ("Δ vs reference", r"$\Delta$ vs ref."),
    ]
    headers += [(md, tex) for md, tex, _ in METRIC_LABELS.values()]
    better = [None, None, "max", "max", "max", *[w for *_, w in METRIC_LABELS.values()]]
    groups = []
    for s in analysis.scenarios.values():
        d = _scenario_decimals(s)
        rows = []
        for p, r in s.policies.items():
            diff = Cell("ref.") if p == s.reference else _estimate(r.difference, d, difference=True)
            cells = [_estimate(r.returns, d), _number(_fixed(r.normalised, 3)), diff]
            cells += [_metric_cell(m, r.metrics[m]) for m in HEADLINE]
            rows.append([Cell(p), Cell(str(r.returns.n))] + [_competing(c, r.role) for c in cells])
        groups.append(rows)
    return Table(
        "Per scenario",
        f"Every policy on each scenario. {caption}",
        "tab:bench-scenarios",
        headers,
        better,
        groups,
    )


def _across(analysis: Analysis, caption: str, ref: str) -> Table:
    """A row per policy: IQM of normalised scores and P(policy > reference), with intervals."""
    rows = []
    for a in analysis.aggregates:
        role = analysis.roles.get(a.policy, "reference")
        p = a.improvement
        rows.append(
            [
                Cell(a.policy),
                Cell(str(a.scenarios)),
                Cell(str(a.samples)),
                _competing(_number(_fixed(a.iqm.value, 3)), role),
                Cell(_interval(a.iqm)),
                _competing(_number(_fixed(p.value, 2)), role) if p else Cell("–"),
                Cell(_interval(p, 2)) if p else Cell("–"),
            ]
        )
    headers = [
        ("policy", "policy"),
        ("scenarios", "scenarios"),
        ("samples", "samples"),
        ("IQM", "IQM"),
        ("95 % CI", r"95\,\% CI"),
        (f"P(policy > {ref})", f"P(policy $>$ {_tex(ref)})"),
        ("95 % CI", r"95\,\% CI"),
    ]
    return Table(
        "Across scenarios",
        caption,
        "tab:bench-aggregate",
        headers,
        [None, None, None, "max", None, "max", None],
        [rows],
    )


def _number(text: str) -> Cell:
    """A number shown as ``text``, competing for bold with its shown value."""
    return Cell(text, value=_float(text))


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _interval(e: Estimate, decimals: int = 3) -> str:
    if not (math.isfinite(e.low) and math.isfinite(e.high)):
        return "–"
    return f"[{e.low:.{decimals}f}, {e.high:.{decimals}f}]"


# --- summary.md --------------------------------------------------------------------------------


def _md_cell(c: Cell) -> str:
    text = c.text + (f" ± {c.pm}" if c.pm is not None else "") + (" *" if c.mark else "")
    return text.replace("|", "\\|")


def _md_table(headers: Iterable[str], rows: list[list[Cell]]) -> list[str]:
    headers = list(headers)
    lines = ["| " + " | ".join(headers) + " |", "|---" + "|---:" * (len(headers) - 1) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def summary_markdown(analysis: Analysis, context: Context) -> str:
    overview, per_scenario, across = tables(analysis, context)
    ref = reference_label(analysis)
    lines = ["# Benchmark report", ""]
    lines.append(
        f"{context.episodes} episodes of {len(analysis.scenarios)} scenario(s) × "
        f"{len(analysis.policies)} policies, from `{records.RESULTS}`."
        + (f" Command: `{context.command}`." if context.command else "")
    )
    lines += ["", overview.caption.split(" Command:")[0], "", f"## {overview.title}", ""]
    lines += _md_table((h for h, _ in overview.headers), overview.groups[0])
    lines += ["", f"## {per_scenario.title}", "", per_scenario.caption.split(" Command:")[0]]
    for s, rows in zip(analysis.scenarios.values(), per_scenario.groups, strict=True):
        lines += ["", f"### {s.name}", ""]
        best = s.best_baseline or "none"
        lines.append(
            f"Best baseline: {best}; reference: {s.reference or 'none'}; normalised "
            f"0 = {s.low_from} ({s.low:.6g}), 1 = {s.high_from} ({s.high:.6g})."
        )
        lines.append("")
        lines += _md_table((h for h, _ in per_scenario.headers), rows)
    lines += ["", f"## {across.title}", "", across.caption.split(" Command:")[0], ""]
    if across.groups[0]:
        lines += _md_table((h for h, _ in across.headers), across.groups[0])
    else:
        lines.append("No scenario could be normalised: nothing to aggregate.")
    if ref == "best baseline":
        lines += ["", "The row `best baseline` takes each scenario's own best baseline."]
    lines += ["", "## Figures", ""]
    for name, reason in context.figures.items():
        what = figures.FIGURES[name]
        if reason is not None:
            lines.append(f"- `{name}`: skipped, {reason}")
        elif context.figures_error is not None:
            lines.append(f"- `{name}`: not drawn, {context.figures_error}")
        else:
            lines.append(f"- `figures/{name}.png`, `.pdf`: {what}")
    if context.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in context.notes]
    return "\n".join(lines) + "\n"


# --- summary.tex -------------------------------------------------------------------------------

_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "–": "--",
    "−": "$-$",
    "Δ": r"$\Delta$",
    "×": r"$\times$",
    "½": r"$\frac{1}{2}$",
    "±": r"$\pm$",
    "→": r"$\to$",
    "≤": r"$\leq$",
    "<": r"$<$",
    ">": r"$>$",
    "|": r"\textbar{}",
    "…": r"\dots{}",
    "·": r"$\cdot$",
}


def _tex(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


_SCIENTIFIC = re.compile(r"([+-]?\d+(?:\.\d+)?)e([+-]\d+)")


def _tex_number(text: str) -> str:
    if match := _SCIENTIFIC.fullmatch(text):
        return f"${match[1]}\\times 10^{{{int(match[2])}}}$"
    return _tex(text).replace("-", "$-$") if text[:1] in "+-0123456789[" else _tex(text)


def _tex_cell(c: Cell) -> str:
    text = _tex_number(c.text) + (f" $\\pm$ {_tex_number(c.pm)}" if c.pm is not None else "")
    text = f"\\textbf{{{text}}}" if c.bold else text
    return text + ("$^{*}$" if c.mark else "")


def _tex_table(t: Table, first_column: list[str] | None = None) -> list[str]:
    """One booktabs table; ``first_column`` (one entry per group) adds a leading column that
    names each group on its first row."""
    lead = ["l"] if first_column else []
    spec = "".join(lead + ["l"] + ["r"] * (len(t.headers) - 1))
    headers = (["scenario"] if first_column else []) + [tex for _, tex in t.headers]
    lines = [
        r"\begin{table}[htbp]",
        r"\centering",
        r"\small",
        f"\\caption{{{_tex(t.caption)}}}",
        f"\\label{{{t.label}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(headers) + r" \\",
        r"\midrule",
    ]
    for g, rows in enumerate(t.groups):
        if g:
            lines.append(r"\midrule")
        for i, row in enumerate(rows):
            cells = [_tex_cell(c) for c in row]
            if first_column:
                cells.insert(0, _tex(first_column[g]) if i == 0 else "")
            lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return lines


def summary_latex(analysis: Analysis, context: Context) -> str:
    overview, per_scenario, across = tables(analysis, context)
    lines = [
        "% mtenv bench report: the benchmark's tables for LaTeX (needs \\usepackage{booktabs}).",
        f"% {context.episodes} episodes from {records.RESULTS}."
        + (f" Command: {context.command}" if context.command else ""),
        "",
    ]
    lines += [*_tex_table(overview), ""]
    lines += [*_tex_table(per_scenario, list(analysis.scenarios)), ""]
    if across.groups[0]:
        lines += _tex_table(across)
    return "\n".join(lines) + "\n"
