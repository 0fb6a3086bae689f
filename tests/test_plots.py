"""Recording runs and drawing a paper's figures from them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mtenv.render.plots import pareto_front
from mtenv.tools.cli import main

pytest.importorskip("matplotlib")


def record(tmp_path, policy: str, capsys) -> str:
    out = tmp_path / policy
    args = [
        "run",
        "--policy",
        policy,
        "--episodes",
        "2",
        "--inference",
        "memoized",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    capsys.readouterr()
    return str(out)


def test_a_recorded_run_holds_metrics_timeline_and_latencies(tmp_path, capsys):
    record(tmp_path, "random", capsys)
    meta = json.loads((tmp_path / "random" / "run.json").read_text())
    assert [m["tasks"] for m in meta["episodes"]] == [300, 300]
    lines = (tmp_path / "random" / "timeline.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * 300  # a header, then one row per decision
    with np.load(tmp_path / "random" / "latencies.npz", allow_pickle=False) as npz:
        assert [len(npz[f"episode_{i}"]) for i in range(2)] == [
            m["completed"] for m in meta["episodes"]
        ]


def test_plot_writes_every_figure_as_png_and_pdf(tmp_path, capsys):
    runs = [record(tmp_path, p, capsys) for p in ("random", "round-robin")]
    assert main(["plot", *runs, "--out", str(tmp_path / "figs")]) == 0
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    expected = ["accuracy_cost", "latency_cdf", "plan_mix", "utilization"]
    assert names == sorted(f"{n}.{ext}" for n in expected for ext in ("pdf", "png"))
    assert all((tmp_path / "figs" / n).stat().st_size > 1000 for n in names)


def test_plot_of_a_folder_that_is_not_a_recording_fails_clearly(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert "run.json: not found" in capsys.readouterr().err


def test_run_refuses_to_overwrite_a_folder_that_is_not_a_recording(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["run", "--episodes", "1", "--out", str(tmp_path)]) == 2
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_pareto_front_keeps_the_runs_nothing_beats():
    points = [(1.0, 0.8), (2.0, 0.9), (1.5, 0.7), (3.0, 0.9), (0.5, 0.5)]
    assert pareto_front(points) == [4, 0, 1]


def test_learning_curves_are_drawn_when_training_left_one(tmp_path, capsys):
    folder = record(tmp_path, "random", capsys)
    (tmp_path / "random" / "learning_curve.csv").write_text(
        "step,episode_return\n0,10.5\n1000,42.0\n2000,55.25\n"
    )
    assert main(["plot", folder, "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "learning_curve.png").stat().st_size > 1000
    assert (tmp_path / "figs" / "learning_curve.pdf").exists()


def test_plot_draws_every_run_and_writes_where_told(tmp_path, capsys, monkeypatch):
    """Timeline figures get one panel per run; the default folder is ./plots, not a run's."""
    from mtenv.render.plots import build_figures, load_run

    runs = [record(tmp_path, p, capsys) for p in ("random", "round-robin")]
    figures = build_figures([load_run(r) for r in runs])
    for name in ("plan_mix", "utilization"):
        titles = [ax.get_title() for ax in figures[name].axes if ax.get_title()]
        assert len(titles) == 2 and "random" in titles[0] and "round-robin" in titles[1], name
    monkeypatch.chdir(tmp_path)
    assert main(["plot", *runs]) == 0
    _, err = capsys.readouterr()
    assert (tmp_path / "plots" / "plan_mix.png").is_file()
    assert not (tmp_path / "random" / "plots").exists()
    assert "in plots/" in err
