"""``mtenv bench`` statistics, tables and figures (``mtenv.tools.bench.{stats,report,figures}``).

The results are synthetic: a small ``results.jsonl`` written with ``records.append`` whose
returns are fixed numbers, so that every statistic can be checked against values computed here
independently (plain loops, closed forms), and the CSV, Markdown and LaTeX tables against each
other.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from mtenv.tools.bench import figures, records, report, stats

SCENARIOS = ("alpha", "beta_load")
POLICIES = ("random", "fastest", "infaas", "oracle", "my-ppo")
SEEDS = (0, 1, 2)
EPISODES = 2
BASE = {
    "alpha": {"random": 10.0, "fastest": 30.0, "infaas": 40.0, "oracle": 60.0, "my-ppo": 45.0},
    "beta_load": {"random": 5.0, "fastest": 25.0, "infaas": 20.0, "oracle": 35.0, "my-ppo": 27.0},
}
SEED_SHIFT = {0: 0.0, 1: 3.0, 2: -1.5}
COST = {"alpha": 1e-3, "beta_load": 2e-7}  # beta's costs print in scientific notation
POLICY_SHIFT = {"random": 0.0, "fastest": 1.0, "infaas": -2.0, "oracle": 0.5, "my-ppo": 2.5}


def episode_return(scenario: str, policy: str, seed: int, episode: int) -> float:
    """Fixed numbers: a scenario × policy level, a per-seed workload shift, a policy-and-seed
    wobble (so paired differences vary), ±1 between the two episodes."""
    wobble = POLICY_SHIFT[policy] * (seed - 1) ** 2
    return BASE[scenario][policy] + SEED_SHIFT[seed] + wobble + (1.0 if episode else -1.0)


def seed_mean(scenario: str, policy: str, seed: int) -> float:
    return sum(episode_return(scenario, policy, seed, e) for e in range(EPISODES)) / EPISODES


def write_results(out: Path, trained: bool = True) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / records.RESULTS
    for scenario in SCENARIOS:
        for policy in POLICIES:
            if policy == "my-ppo" and not trained:
                continue
            for seed in SEEDS:
                curve = [[0, 0.0], [500, 10.0 + seed], [1000 + 100 * seed, 20.0 + 2 * seed]]
                for episode in range(EPISODES):
                    ret = episode_return(scenario, policy, seed, episode)
                    level = BASE[scenario][policy] / 60
                    records.append(
                        path,
                        {
                            "kind": "episode",
                            "scenario": scenario,
                            "policy": policy,
                            "seed": seed,
                            "episode": episode,
                            "eval_seed": 10_000 + 1000 * seed,
                            "return": ret,
                            "metrics": {
                                "episode_return": ret,
                                "accuracy": 0.5 + 0.4 * level,
                                "slo_attainment": 0.9 - 0.01 * seed,
                                "latency_p95_ms": 12.5,
                                "cost_usd": COST[scenario] * (1 + level + 0.01 * episode),
                                "reject_rate": 0.1 * (1 - level),
                            },
                            "latency_cdf_ms": list(np.linspace(1.0, 20.0 + 10 * level, 101)),
                            "scenario_hash": f"sha256:{scenario}",
                            "versions": {"mtenv": "0.1.0"},
                            "train": {"run_dir": "r", "cpu_s": 1.0, "curve": curve}
                            if policy == "my-ppo"
                            else None,
                            "wall_s": 0.1,
                        },
                    )
    (out / report.MANIFEST).write_text(json.dumps({"command": ["mtenv", "bench", "run", "x"]}))
    return path


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("bench")
    write_results(out)
    return out, report.write_report(out, log=lambda line: None)


@pytest.fixture
def tables_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip drawing (seconds per report) where a test reads only the tables."""
    monkeypatch.setattr(figures, "draw", lambda *args, **kwargs: [])


def read_csv(out: Path) -> list[dict[str, str]]:
    with open(out / report.SUMMARY_CSV, newline="") as f:
        return list(csv.DictReader(f))


# --- the statistics on fixed numbers -----------------------------------------------------------


def t975(df: int) -> float:
    """Student-t 97.5 % quantile in closed form for 2 degrees of freedom:
    t = (2p − 1) / sqrt(2p(1 − p))."""
    assert df == 2
    p = 0.975
    return (2 * p - 1) / math.sqrt(2 * p * (1 - p))


def test_mean_and_t_interval_over_seeds(bench: tuple[Path, list[Path]]) -> None:
    rows = {
        (r["scenario"], r["policy"]): r for r in read_csv(bench[0]) if r["statistic"] == "return"
    }
    assert len(rows) == len(SCENARIOS) * len(POLICIES)
    for (scenario, policy), row in rows.items():
        xs = [seed_mean(scenario, policy, k) for k in SEEDS]
        mean = sum(xs) / len(xs)
        sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
        half = t975(2) * sd / math.sqrt(len(xs))
        assert int(row["n"]) == 3
        assert float(row["mean"]) == pytest.approx(mean, abs=1e-12)
        # the project's t table holds the quantile to 3 decimals (4.303)
        assert float(row["ci_high"]) - mean == pytest.approx(half, rel=1e-3, abs=1e-12)
        assert mean - float(row["ci_low"]) == pytest.approx(half, rel=1e-3, abs=1e-12)


def test_paired_difference_to_best_baseline(bench: tuple[Path, list[Path]]) -> None:
    rows = {
        (r["scenario"], r["policy"]): r for r in read_csv(bench[0]) if r["statistic"] == "return"
    }
    # best baseline: alpha → infaas (40 > 30), beta_load → fastest (25 > 20); oracle excluded
    assert rows["alpha", "my-ppo"]["reference"] == "infaas"
    assert rows["beta_load", "my-ppo"]["reference"] == "fastest"
    for scenario, best in (("alpha", "infaas"), ("beta_load", "fastest")):
        assert rows[scenario, best]["diff_mean"] == ""  # the reference itself
        d = [seed_mean(scenario, "my-ppo", k) - seed_mean(scenario, best, k) for k in SEEDS]
        mean = sum(d) / 3
        sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)
        row = rows[scenario, "my-ppo"]
        assert float(row["diff_mean"]) == pytest.approx(mean, abs=1e-12)
        assert float(row["diff_ci_high"]) - mean == pytest.approx(
            t975(2) * sd / math.sqrt(3), rel=1e-3
        )
        assert row["diff_excludes_zero"] == str(int(mean - t975(2) * sd / math.sqrt(3) > 0))
        # normalised: 0 = random's mean, 1 = oracle's
        low = sum(seed_mean(scenario, "random", k) for k in SEEDS) / 3
        high = sum(seed_mean(scenario, "oracle", k) for k in SEEDS) / 3
        my = sum(seed_mean(scenario, "my-ppo", k) for k in SEEDS) / 3
        assert float(row["normalised_mean"]) == pytest.approx((my - low) / (high - low))


def hand_iqm(values: list[float]) -> float:
    xs = sorted(values)
    cut = int(0.25 * len(xs))
    kept = xs[cut : len(xs) - cut]
    return sum(kept) / len(kept)


def test_iqm_of_known_arrays() -> None:
    assert stats.iqm(np.arange(1.0, 9.0)) == 4.5  # drop 1, 2 and 7, 8
    assert stats.iqm(np.array([[1.0, 100.0], [2.0, 3.0], [-50.0, 4.0]])) == 2.5  # 6 → drop 1+1
    assert stats.iqm([np.array([5.0]), np.array([1.0, 2.0, 3.0])]) == 2.5  # ragged strata


def test_bootstrap_iqm_interval_matches_a_hand_computed_one() -> None:
    """The same draws (one generator seeded ``BOOTSTRAP_SEED``; per batch of 500 resamples,
    per scenario, ``integers(0, n, (500, n))``), the statistic and quantiles computed here
    with loops."""
    matrix = np.array([[0.1, 0.9, 0.4], [0.3, 0.7, 0.5], [0.2, 1.1, 0.45], [0.6, 0.8, 0.3]])
    rng = np.random.default_rng(stats.BOOTSTRAP_SEED)
    values = []
    for _ in range(stats.BOOTSTRAP_RESAMPLES // 500):
        picks = [rng.integers(0, 4, size=(500, 4)) for _ in range(3)]
        for b in range(500):
            pooled = [float(matrix[picks[j][b][i], j]) for j in range(3) for i in range(4)]
            values.append(hand_iqm(pooled))
    values.sort()

    def quantile(q: float) -> float:  # linear interpolation, as numpy's default
        pos = q * (len(values) - 1)
        lo = math.floor(pos)
        return values[lo] + (pos - lo) * (values[min(lo + 1, len(values) - 1)] - values[lo])

    low, high = stats.iqm_ci(matrix)
    assert low == pytest.approx(quantile(0.025), abs=1e-12)
    assert high == pytest.approx(quantile(0.975), abs=1e-12)
    assert stats.iqm(matrix) == pytest.approx(hand_iqm(list(matrix.ravel())), abs=1e-12)
    assert low <= stats.iqm(matrix) <= high
    assert stats.iqm_ci(np.full((3, 2), 0.7)) == pytest.approx((0.7, 0.7))


def test_probability_of_improvement_counts_pairs_and_half_ties() -> None:
    x = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    y = np.array([[2.0, 5.0], [2.0, 5.0], [0.0, 5.0]])
    # scenario 0: 5 wins and 2 ties of 9 pairs → 6/9; scenario 1: all ties → 1/2
    assert stats.probability_of_improvement(x, y) == pytest.approx((6 / 9 + 0.5) / 2)
    low, high = stats.improvement_ci(x, y)
    assert 0 <= low <= high <= 1
    taus = np.array([0.0, 2.0, 4.0])
    assert stats.performance_profile(x, taus).tolist() == pytest.approx([1.0, 4 / 6, 3 / 6])


def test_aggregate_rows(bench: tuple[Path, list[Path]]) -> None:
    rows = [r for r in read_csv(bench[0]) if r["scenario"] == report.ALL]
    iqm_rows = {r["policy"]: r for r in rows if r["statistic"] == "iqm"}
    assert set(iqm_rows) == {*POLICIES, stats.BEST_BASELINE}
    scores = []
    for scenario in SCENARIOS:
        low = sum(seed_mean(scenario, "random", k) for k in SEEDS) / 3
        high = sum(seed_mean(scenario, "oracle", k) for k in SEEDS) / 3
        scores += [(seed_mean(scenario, "my-ppo", k) - low) / (high - low) for k in SEEDS]
    ppo = iqm_rows["my-ppo"]
    assert float(ppo["mean"]) == pytest.approx(hand_iqm(scores), abs=1e-12)
    assert float(ppo["ci_low"]) <= float(ppo["mean"]) <= float(ppo["ci_high"])
    assert (int(ppo["n"]), int(ppo["n_scenarios"])) == (6, 2)
    improvement = {r["policy"]: r for r in rows if r["statistic"] == "p_improvement"}
    assert stats.BEST_BASELINE not in improvement  # the reference is not compared to itself
    assert float(improvement["oracle"]["mean"]) == 1.0
    assert float(improvement["random"]["mean"]) == 0.0


# --- the three tables agree --------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def _close(text: str, value: float) -> bool:
    """Whether ``text`` is ``value`` rounded to the digits it shows."""
    mantissa, _, exponent = text.partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return abs(float(text) - value) <= 0.5 * 10.0 ** (int(exponent or 0) - decimals) * 1.000001


def _check_cells(cells: list[str], row: dict[str, str]) -> None:
    """``cells``: seeds, return ± half, normalised, Δ ± half (or ref.), five metrics."""
    assert cells[0] == row["n"]
    mean, half = _NUMBER.findall(cells[1])
    assert _close(mean, float(row["mean"]))
    assert _close(half, (float(row["ci_high"]) - float(row["ci_low"])) / 2)
    assert _close(cells[2], float(row["normalised_mean"]))
    if row["diff_mean"] == "":
        assert cells[3] == "ref."
    else:
        diff, dhalf = _NUMBER.findall(cells[3])
        assert _close(diff, float(row["diff_mean"]))
        assert _close(dhalf, (float(row["diff_ci_high"]) - float(row["diff_ci_low"])) / 2)
        assert cells[3].endswith("*") == (row["diff_excludes_zero"] == "1")
    for text, name in zip(cells[4:], stats.HEADLINE, strict=True):
        assert _close(text, float(row[name])), (name, text, row[name])


def _tex_plain(cell: str) -> str:
    cell = re.sub(r"\$([-\d.]+)\\times 10\^\{(-?\d+)\}\$", r"\1e\2", cell)
    cell = cell.replace("$-$", "-").replace("$\\pm$", "±").replace("$^{*}$", " *")
    return re.sub(r"\\textbf\{(.*)\}", r"\1", cell).replace("\\_", "_").strip()


def test_csv_markdown_and_latex_agree(bench: tuple[Path, list[Path]]) -> None:
    out = bench[0]
    rows = {(r["scenario"], r["policy"]): r for r in read_csv(out) if r["statistic"] == "return"}
    markdown = (out / report.SUMMARY_MD).read_text()
    latex = (out / report.SUMMARY_TEX).read_text()
    assert "mtenv bench run x" in markdown and "mtenv bench run x" in latex

    seen_md = set()
    for scenario in SCENARIOS:
        section = markdown.split(f"### {scenario}\n", 1)[1].split("\n## ", 1)[0]
        section = section.split("\n### ", 1)[0]
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("|") and (scenario, cells[0]) in rows:
                _check_cells(cells[1:], rows[scenario, cells[0]])
                seen_md.add((scenario, cells[0]))
    assert seen_md == set(rows)

    seen_tex, scenario = set(), None
    body = latex.split(r"\label{tab:bench-scenarios}", 1)[1].split(r"\end{tabular}", 1)[0]
    for line in body.splitlines():
        if not line.endswith(r"\\") or "toprule" in line:
            continue
        cells = [_tex_plain(c) for c in line[: -len(r"\\")].split("&")]
        scenario = cells[0] or scenario
        if (scenario, cells[1]) in rows:
            _check_cells(cells[2:], rows[scenario, cells[1]])
            seen_tex.add((scenario, cells[1]))
    assert seen_tex == set(rows)

    aggregate = {(r["statistic"], r["policy"]): r for r in read_csv(out) if r["scenario"] == "all"}
    md_rows = markdown.split("## Across scenarios", 1)[1].split("\n## ", 1)[0]
    count = 0
    for line in md_rows.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if ("iqm", cells[0]) in aggregate:
            r = aggregate["iqm", cells[0]]
            low, high = _NUMBER.findall(cells[4])
            assert _close(cells[3], float(r["mean"])) and _close(low, float(r["ci_low"]))
            assert _close(high, float(r["ci_high"]))
            if ("p_improvement", cells[0]) in aggregate:
                assert _close(cells[5], float(aggregate["p_improvement", cells[0]]["mean"]))
            count += 1
    assert count == len(POLICIES) + 1


def test_latex_is_booktabs_with_bold_best_and_escaped_names(
    bench: tuple[Path, list[Path]],
) -> None:
    latex = (bench[0] / report.SUMMARY_TEX).read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert latex.count(rule) >= 3
    assert r"beta\_load" in latex and "beta_load" not in latex.replace(r"beta\_load", "")
    assert r"$\pm$" in latex and "±" not in latex
    unescaped = re.sub(r"\\[{}$%&_#]", "", latex)
    assert unescaped.count("{") == unescaped.count("}")
    assert all(line.count("$") % 2 == 0 for line in unescaped.splitlines())
    assert not re.search(r"[^\x00-\x7f]", latex), "non-ASCII left in the LaTeX"
    body = latex.split(r"\label{tab:bench-scenarios}", 1)[1]
    alpha = next(line for line in body.splitlines() if line.startswith("alpha"))
    ppo = next(
        line
        for line in body.splitlines()
        if line.startswith(" & my-ppo") or line.startswith("& my-ppo")
    )
    # my-ppo has alpha's best return among non-oracle policies; the oracle is never bold
    assert r"\textbf{" in ppo.split("&")[3]
    oracle = [line for line in body.splitlines() if "& oracle &" in line]
    assert oracle and all(r"\textbf" not in line for line in oracle)
    assert alpha.split("&")[0].strip() == "alpha"


def test_reference_option_and_unknown_reference(tmp_path: Path, tables_only: None) -> None:
    write_results(tmp_path)
    report.write_report(tmp_path, reference="random", log=lambda line: None)
    rows = [r for r in read_csv(tmp_path) if r["statistic"] == "return"]
    assert {r["reference"] for r in rows} == {"random"}
    assert all(r["diff_mean"] == "" for r in rows if r["policy"] == "random")
    aggregate = [r for r in read_csv(tmp_path) if r["scenario"] == "all"]
    assert stats.BEST_BASELINE not in {r["policy"] for r in aggregate}
    with pytest.raises(ValueError, match="'nope' is not in the results"):
        report.write_report(tmp_path, reference="nope")


@pytest.mark.parametrize(
    ("manifest", "command"),
    [
        ({"argv": ["bench", "--out", "my dir"]}, "mtenv bench --out 'my dir'"),
        ({"argv": ["--seeds", "3"]}, "mtenv bench --seeds 3"),
        ({"command": "mtenv bench --seeds 3"}, "mtenv bench --seeds 3"),
        ({"argv": 3}, None),
        ([1, 2], None),
    ],
)
def test_the_command_line_comes_from_the_manifest(
    tmp_path: Path, manifest: object, command: str | None
) -> None:
    path = tmp_path / report.MANIFEST
    path.write_text(json.dumps(manifest))
    assert report._command(path) == command
    assert report._command(tmp_path / "absent.json") is None


# --- figures, determinism, missing pieces ------------------------------------------------------


def test_figures_render_headless(bench: tuple[Path, list[Path]]) -> None:
    out, written = bench
    for name in figures.FIGURES:
        png, pdf = out / "figures" / f"{name}.png", out / "figures" / f"{name}.pdf"
        assert png in written and pdf in written
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert pdf.read_bytes()[:5] == b"%PDF-"
    assert {out / n for n in (report.SUMMARY_CSV, report.SUMMARY_MD, report.SUMMARY_TEX)} <= set(
        written
    )
    assert not list(out.rglob("*.tmp*"))


def test_report_is_deterministic(bench: tuple[Path, list[Path]], tmp_path: Path) -> None:
    out = bench[0]
    first = {
        n: (out / n).read_bytes()
        for n in (report.SUMMARY_CSV, report.SUMMARY_MD, report.SUMMARY_TEX)
    }
    drawn = {p.name: p.read_bytes() for p in (out / "figures").iterdir()}
    assert len(drawn) == 2 * len(figures.FIGURES)
    again = tmp_path / "again"
    write_results(again)
    report.write_report(again, log=lambda line: None)
    for name, content in first.items():
        assert (again / name).read_bytes() == content, name
    for name, content in drawn.items():  # PNG and PDF alike: no timestamps
        assert (again / "figures" / name).read_bytes() == content, name


def test_without_trained_policies_the_learning_curves_are_skipped(tmp_path: Path) -> None:
    write_results(tmp_path, trained=False)
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "learning_curves.png").write_bytes(b"stale")
    notes: list[str] = []
    written = report.write_report(tmp_path, log=notes.append)
    assert not (tmp_path / "figures" / "learning_curves.png").exists()
    assert (tmp_path / "figures" / "returns.png") in written
    assert any("learning_curves skipped" in n for n in notes)
    assert "`learning_curves`: skipped" in (tmp_path / report.SUMMARY_MD).read_text()


def test_without_matplotlib_the_tables_are_still_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing() -> None:
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

    monkeypatch.setattr(figures, "pyplot", missing)
    write_results(tmp_path)
    notes: list[str] = []
    written = report.write_report(tmp_path, log=notes.append)
    assert [p.name for p in written] == [report.SUMMARY_CSV, report.SUMMARY_MD, report.SUMMARY_TEX]
    (line,) = [n for n in notes if n.startswith("figures not drawn")]
    assert "'render' extra" in line and "pip install" in line
    assert "'render' extra" in (tmp_path / report.SUMMARY_MD).read_text()


def test_a_cut_last_line_and_failures_are_noted(tmp_path: Path, tables_only: None) -> None:
    path = write_results(tmp_path)
    records.append(
        path,
        {
            "kind": "failure",
            "scenario": "alpha",
            "policy": "ucb1",
            "seed": 0,
            "error": "boom",
            "traceback": "",
        },
    )
    with open(path, "a") as f:
        f.write('{"kind": "episode", "scen')
    notes: list[str] = []
    report.write_report(tmp_path, log=notes.append)
    text = (tmp_path / report.SUMMARY_MD).read_text()
    assert "alpha/ucb1/seed 0" in text and "cut short" in text
    with pytest.raises(FileNotFoundError):
        report.write_report(tmp_path / "empty")


def test_learning_curve_band_interpolates_on_a_common_grid() -> None:
    curves = [np.array([[0, 0.0], [100, 10.0]]), np.array([[0, 2.0], [50, 4.0], [120, 6.0]])]
    band = stats.t_band(curves, points=3)
    assert band is not None
    assert band["step"].tolist() == [0.0, 50.0, 100.0]  # up to the earliest last step
    # at step 50: 5.0 and 4.0; at 100: 10.0 and 4 + 50/70·2
    assert band["mean"].tolist() == pytest.approx([1.0, 4.5, (10 + 4 + 100 / 70) / 2])


def test_the_statistics_have_one_home() -> None:
    repo = Path(__file__).resolve().parents[1]
    assert not (repo / "benchmarks" / "stats.py").exists()
    for script in ("headroom.py", "study.py"):
        path = repo / "benchmarks" / script
        if path.exists():
            assert "from mtenv.tools.bench.stats import" in path.read_text()


# --- agreement with rliable (Agarwal et al.'s own library), where installed ---------------------


def test_agrees_with_rliable() -> None:
    pytest.importorskip("rliable")
    from rliable import library, metrics

    rng = np.random.default_rng(7)
    x = rng.normal(0.6, 0.25, size=(6, 4))
    y = rng.normal(0.5, 0.25, size=(5, 4))
    np.random.seed(0)  # rliable's bootstrap draws from numpy's global generator
    reps = 2000

    assert stats.iqm(x) == pytest.approx(metrics.aggregate_iqm(x), rel=1e-12)
    _, interval = library.get_interval_estimates(
        {"x": x}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=reps
    )
    assert stats.iqm_ci(x) == pytest.approx(tuple(interval["x"].ravel()), abs=0.03)

    p = metrics.probability_of_improvement(x, y)
    assert stats.probability_of_improvement(x, y) == pytest.approx(p, rel=1e-12)
    _, interval = library.get_interval_estimates(
        {"p": [x, y]},
        lambda a, b: np.array([metrics.probability_of_improvement(a, b)]),
        reps=reps,
    )
    assert stats.improvement_ci(x, y) == pytest.approx(tuple(interval["p"].ravel()), abs=0.04)

    taus = np.linspace(-0.2, 1.4, 17)
    profiles, bands = library.create_performance_profile({"x": x}, taus, reps=reps)
    assert stats.performance_profile(x, taus) == pytest.approx(profiles["x"], rel=1e-12)
    low, high = stats.profile_band(x, taus)
    # the band moves in steps of 1/24 (24 scores): at most one step apart
    assert np.abs(low - bands["x"][0]).max() <= 1 / 24 + 1e-9
    assert np.abs(high - bands["x"][1]).max() <= 1 / 24 + 1e-9
