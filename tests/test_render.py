"""pygame rendering: rgb_array frames for every registered id, human mode under SDL's dummy
driver, determinism, the viewer's life cycle, and the error when pygame is missing.

conftest.py sets ``SDL_VIDEODRIVER=dummy`` before anything imports pygame.
"""

from __future__ import annotations

import os
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import registered_kwargs
from gymnasium.error import DependencyNotInstalled
from gymnasium.utils.env_checker import check_env

from mtenv.core.snapshot import Snapshot
from mtenv.envs.task_allocation import TaskAllocationEnv
from mtenv.render.viewer import FONT_PATH, HEIGHT, WIDTH, Viewer

pytest.importorskip("pygame")

ENV_IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("mtenv/"))
SHORT = 30


def _make(env_id: str, **kwargs) -> gym.Env:
    return gym.make(
        env_id, inference="memoized", episode_tasks=SHORT, **registered_kwargs(env_id), **kwargs
    )


def _cycle(info, i: int) -> int:
    """A deterministic spread over the valid actions."""
    valid = info["action_mask"].nonzero()[0]
    return int(valid[(7 * i) % len(valid)])


def _frames(env_id: str, seed: int = 0, steps: int = 12) -> list[np.ndarray]:
    env = _make(env_id, render_mode="rgb_array")
    try:
        _, info = env.reset(seed=seed)
        frames = [env.render()]
        for i in range(steps):
            _, _, terminated, truncated, info = env.step(_cycle(info, i))
            if terminated or truncated:
                break
        frames.append(env.render())
        return frames
    finally:
        env.close()


def _distinct_colours(frame: np.ndarray) -> int:
    packed = frame.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.uint32)
    return len(np.unique(packed))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_id_renders_a_changing_frame(env_id):
    first, later = _frames(env_id)
    for frame in (first, later):
        assert frame.shape == (HEIGHT, WIDTH, 3) == (720, 1280, 3)
        assert frame.dtype == np.uint8
        assert frame.flags.c_contiguous and frame.flags.writeable
        assert _distinct_colours(frame) > 50  # text, bars and marks, not a blank fill
    assert not np.array_equal(first, later)


def test_same_seed_gives_identical_frames():
    a = _frames("mtenv/Quickstart-v0", seed=3)
    b = _frames("mtenv/Quickstart-v0", seed=3)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa, fb)


def test_frame_is_a_copy_not_a_view_of_the_canvas():
    env = _make("mtenv/Quickstart-v0", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    kept = frame.copy()
    frame[:] = 0
    np.testing.assert_array_equal(env.render(), kept)
    env.close()


@pytest.mark.parametrize("mode", ["rgb_array", "human"])
def test_check_env_passes(mode):
    # Through gym.make, so that the checker also builds the env in the other render modes.
    env = _make("mtenv/Quickstart-v0", render_mode=mode).unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=False)
    env.close()
    assert not [w for w in caught if "render" in str(w.message).lower()]


def test_human_mode_draws_from_step_and_returns_none():
    import pygame

    env = TaskAllocationEnv(
        "quickstart", render_mode="human", inference="memoized", episode_tasks=5
    )
    _, info = env.reset(seed=0)
    assert env.viewer is not None and pygame.display.get_init()
    assert pygame.display.get_surface() is not None
    for i in range(3):
        _, _, _, _, info = env.step(_cycle(info, i))
    assert env.render() is None
    env.close()
    assert env.viewer is None
    assert not pygame.display.get_init()  # the viewer opened the display, so it shut it


def test_close_leaves_a_display_it_did_not_open():
    import pygame

    pygame.display.init()
    try:
        viewer = Viewer("human")
        viewer.render(_snapshot())
        viewer.close()
        assert pygame.display.get_init()
    finally:
        pygame.display.quit()


def test_render_after_close_and_close_twice():
    env = _make("mtenv/Quickstart-v0", render_mode="rgb_array")
    env.reset(seed=0)
    before = env.render()
    env.close()
    env.close()
    again = env.render()  # builds a new viewer
    np.testing.assert_array_equal(before, again)
    env.close()
    env.close()


def test_injected_viewer_is_used():
    class Recorder:
        def __init__(self):
            self.snapshots: list[Snapshot] = []
            self.closed = 0

        def render(self, snap):
            self.snapshots.append(snap)
            return np.zeros((HEIGHT, WIDTH, 3), np.uint8)

        def close(self):
            self.closed += 1

    rec = Recorder()
    env = TaskAllocationEnv(
        "quickstart", render_mode="rgb_array", inference="memoized", episode_tasks=5, viewer=rec
    )
    _, info = env.reset(seed=0)
    env.step(_cycle(info, 0))
    env.render()
    snap = rec.snapshots[-1]
    assert snap.scenario == "quickstart" and snap.arrived == 2 and snap.last_action
    assert len(snap.devices) == 3 and snap.task is not None
    with pytest.raises(AttributeError):  # frozen
        snap.time_s = 1.0  # type: ignore[misc]
    env.close()
    assert rec.closed == 1 and env.viewer is rec


def test_snapshot_outcomes_are_bounded_and_episode_end_renders():
    env = TaskAllocationEnv(
        "quickstart", render_mode="rgb_array", inference="memoized", episode_tasks=60
    )
    _, info = env.reset(seed=0)
    i, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        _, _, terminated, truncated, info = env.step(_cycle(info, i))
        i += 1
    snap = env.snapshot()
    assert len(snap.outcomes) == 40 and snap.task is None
    assert set(snap.outcomes) <= {"correct", "wrong", "late", "rejected", "dropped"}
    assert env.render().shape == (HEIGHT, WIDTH, 3)
    env.close()


def test_missing_pygame_raises_dependency_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)
    with pytest.raises(DependencyNotInstalled, match=r'pip install "mtenv-alloc\[render\]"') as err:
        Viewer("rgb_array")
    assert 'in a source checkout: pip install ".[render]"' in str(err.value)


def test_font_is_shipped_and_simulator_stays_pygame_free(tmp_path):
    import subprocess

    assert FONT_PATH.is_file() and FONT_PATH.suffix == ".ttf"
    assert (FONT_PATH.parent / "LICENSE").is_file()
    code = (
        "import sys, mtenv.envs.task_allocation, mtenv.core.simulator, mtenv.core.snapshot;"
        "assert 'pygame' not in sys.modules, 'pygame imported eagerly'"
    )
    # From elsewhere, so that the installed package is imported, not the source folder.
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def _snapshot() -> Snapshot:
    env = TaskAllocationEnv("quickstart", inference="memoized", episode_tasks=5)
    env.reset(seed=0)
    return env.snapshot()


def test_headless_rendering_keeps_stderr_and_stdout_clean(tmp_path):
    """No display, no ``SDL_VIDEODRIVER``: ``check_env`` (which renders every mode, ``human``
    included) prints neither SDL's ``XDG_RUNTIME_DIR`` error nor pygame's greeting."""
    import subprocess

    code = (
        "import gymnasium as gym, mtenv\n"
        "from gymnasium.utils.env_checker import check_env\n"
        "env = gym.make('mtenv/Quickstart-v0', inference='memoized', episode_tasks=5)\n"
        "check_env(env.unwrapped)\n"
        "print('checked')\n"
    )
    hidden = ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR")
    env = {k: v for k, v in os.environ.items() if k not in hidden and "PYGAME" not in k}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "checked\n"
    assert done.stderr == ""
