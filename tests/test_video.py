"""Recording: video files of the expected length, and nothing half-written on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mtenv.render.video import VideoError, write_video

PIL = pytest.importorskip("PIL.Image")


def frames(n: int) -> list[np.ndarray]:
    """Distinct frames: a bright square moving across a dark background."""
    out = []
    for i in range(n):
        frame = np.zeros((48, 64, 3), dtype=np.uint8)
        frame[10:20, 4 * i : 4 * i + 10] = (230, 159, 0)
        out.append(frame)
    return out


def test_gif_holds_every_frame(tmp_path):
    path = write_video(frames(7), tmp_path / "run.gif", fps=10)
    with PIL.open(path) as gif:
        assert gif.n_frames == 7
        assert gif.size == (64, 48)


def test_mp4_holds_every_frame(tmp_path):
    imageio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    path = write_video(frames(12), tmp_path / "run.mp4", fps=10)
    with imageio.get_reader(path) as reader:
        assert sum(1 for _ in reader) == 12


@pytest.mark.parametrize(
    ("name", "n", "message"),
    [("run.avi", 3, "expected a file ending in .gif or .mp4"), ("run.gif", 0, "no frames")],
)
def test_bad_requests_leave_no_file(tmp_path, name, n, message):
    with pytest.raises(VideoError, match=message):
        write_video(frames(n), tmp_path / name, fps=10)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        write_video(frames(2), tmp_path / "nope" / "run.gif", fps=10)


def test_render_command_records_one_frame_per_decision_plus_the_start(tmp_path, capsys):
    from mtenv.tools.cli import main

    out = tmp_path / "quick.gif"
    assert main(["render", "--policy", "random", "--steps", "9", "--out", str(out)]) == 0
    with PIL.open(out) as gif:
        assert gif.n_frames == 10
        assert gif.size == (1280, 720)


def test_render_command_shows_a_window_under_the_dummy_driver(capsys):
    from mtenv.tools.cli import main

    assert main(["render", "--steps", "3", "--show", "--fps", "1000"]) == 0


@pytest.mark.parametrize("extra", [[], ["--show", "--out", "x.gif"]])
def test_render_command_needs_exactly_one_destination(extra, capsys):
    from mtenv.tools.cli import main

    assert main(["render", "--steps", "2", *extra]) == 2
    assert "exactly one of --out" in capsys.readouterr().err
