"""Draw a :class:`~mtenv.core.snapshot.Snapshot` with pygame: ``rgb_array`` frames or a window.

pygame is imported when a :class:`Viewer` is built (the env builds one on its first
``render()``), never at import time, and the simulator never sees it. Text uses the DejaVu Sans
font shipped in ``mtenv/fonts`` (not ``SysFont``), so frames look the same on every machine.
Colours come from the Okabe–Ito palette, which stays distinguishable under the common forms of
colour blindness; priorities are told apart by shape and outline, not colour alone.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.error import DependencyNotInstalled

from mtenv.core.snapshot import OUTCOMES, DeviceView, Snapshot
from mtenv.extras import install_hint

FONT_PATH = Path(__file__).resolve().parent / "fonts" / "DejaVuSans.ttf"
WIDTH, HEIGHT = 1280, 720

# Okabe & Ito (2008), "Color Universal Design".
BLACK = (0, 0, 0)
ORANGE = (230, 159, 0)
SKY_BLUE = (86, 180, 233)
BLUISH_GREEN = (0, 158, 115)
YELLOW = (240, 228, 66)
BLUE = (0, 114, 178)
VERMILLION = (213, 94, 0)
REDDISH_PURPLE = (204, 121, 167)

BACKGROUND = (246, 246, 244)
PANEL = (255, 255, 255)
BORDER = (190, 190, 190)
TEXT = (25, 25, 25)
MUTED = (105, 105, 105)
TRACK = (225, 225, 225)
HIGHLIGHT = (255, 246, 200)

TYPE_COLOURS = (BLUE, ORANGE, REDDISH_PURPLE, SKY_BLUE, YELLOW, BLUISH_GREEN)
OUTCOME_COLOURS = {
    "correct": BLUISH_GREEN,
    "wrong": VERMILLION,
    "late": ORANGE,
    "rejected": (120, 120, 120),
    "dropped": REDDISH_PURPLE,
}
INSTALL_HINT = "pygame is not installed; run " + install_hint("render")


def _bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def _init_display(pg: Any) -> None:
    """``pygame.display.init()``, on the offscreen driver where Linux has no display to open.

    SDL falls back to that driver by itself, but first prints an error about
    ``XDG_RUNTIME_DIR`` on stderr; choosing it up front keeps headless runs (``check_env``,
    CI) quiet. An explicit ``SDL_VIDEODRIVER`` always wins.
    """
    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if "SDL_VIDEODRIVER" in os.environ or not headless:
        pg.display.init()
        return
    os.environ["SDL_VIDEODRIVER"] = "offscreen"
    try:
        pg.display.init()
    finally:
        del os.environ["SDL_VIDEODRIVER"]


def _fmt(value: float, spec: str, missing: str = "–") -> str:
    return missing if math.isnan(value) else format(value, spec)


class Viewer:
    """Draws snapshots on a 1280×720 canvas.

    Args:
        render_mode: ``"rgb_array"`` (:meth:`render` returns an ``(H, W, 3)`` uint8 array) or
            ``"human"`` (draws to a window, paced at ``render_fps``; returns ``None``).
        render_fps: frames per second in ``human`` mode.

    :meth:`close` releases only what this viewer opened: it shuts the display down only if it
    initialised it, and never calls ``pygame.quit()``. It is safe to call twice.
    """

    def __init__(self, render_mode: str = "rgb_array", render_fps: int = 30):
        if render_mode not in ("rgb_array", "human"):
            raise ValueError(f"render_mode: expected 'rgb_array' or 'human', got {render_mode!r}")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # keeps stdout for results
        try:
            import pygame
        except ImportError as err:
            raise DependencyNotInstalled(INSTALL_HINT) from err
        self.pg: Any = pygame
        self.render_mode = render_mode
        self.render_fps = render_fps
        if not pygame.font.get_init():
            pygame.font.init()
        self.fonts = {
            "title": pygame.font.Font(str(FONT_PATH), 20),
            "big": pygame.font.Font(str(FONT_PATH), 16),
            "text": pygame.font.Font(str(FONT_PATH), 13),
            "small": pygame.font.Font(str(FONT_PATH), 11),
        }
        self.fonts["title"].bold = True
        self.canvas = pygame.Surface((WIDTH, HEIGHT))
        self.window = None
        self.clock = None
        self._opened_display = False
        self.closed = False

    # --- public --------------------------------------------------------------------------------

    def render(self, snap: Snapshot) -> np.ndarray | None:
        if self.closed:
            raise RuntimeError("render() on a closed Viewer: build a new one")
        self._draw(snap)
        if self.render_mode == "rgb_array":
            data = self.pg.image.tobytes(self.canvas, "RGB")
            return np.frombuffer(data, dtype=np.uint8).reshape(HEIGHT, WIDTH, 3).copy()
        pg = self.pg
        if self.window is None:
            if not pg.display.get_init():
                _init_display(pg)
                self._opened_display = True
            self.window = pg.display.set_mode((WIDTH, HEIGHT))
            pg.display.set_caption("mtenv")
            self.clock = pg.time.Clock()
        pg.event.pump()
        self.window.blit(self.canvas, (0, 0))
        pg.display.flip()
        self.clock.tick(self.render_fps)
        return None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._opened_display and self.pg.display.get_init():
            self.pg.display.quit()
        self._opened_display = False
        self.window = self.clock = None

    # --- drawing ---------------------------------------------------------------------------------

    def _text(self, text: str, pos: tuple[int, int], font: str = "text", colour=TEXT, width=0):
        f = self.fonts[font]
        if width and f.size(text)[0] > width:
            while text and f.size(text + "…")[0] > width:
                text = text[:-1]
            text += "…"
        surface = f.render(text, True, colour)
        self.canvas.blit(surface, pos)
        return surface.get_width()

    def _bar(self, rect, fraction: float, colour, track=TRACK) -> None:
        pg = self.pg
        rect = pg.Rect(rect)
        pg.draw.rect(self.canvas, track, rect)
        fill = rect.copy()
        fill.width = round(rect.width * min(max(fraction, 0.0), 1.0))
        if fill.width:
            pg.draw.rect(self.canvas, colour, fill)
        pg.draw.rect(self.canvas, MUTED, rect, 1)

    def _mark(self, x: int, y: int, size: int, type_: int, rank: int) -> None:
        """A queued task: colour by type; shape by priority rank (square, outlined, diamond)."""
        pg, colour = self.pg, TYPE_COLOURS[type_ % len(TYPE_COLOURS)]
        if rank >= 2:
            half = size // 2
            pts = [(x + half, y), (x + size, y + half), (x + half, y + size), (x, y + half)]
            pg.draw.polygon(self.canvas, colour, pts)
            pg.draw.polygon(self.canvas, BLACK, pts, 2)
        else:
            pg.draw.rect(self.canvas, colour, (x, y, size, size))
            if rank == 1:
                pg.draw.rect(self.canvas, BLACK, (x, y, size, size), 2)

    def _draw(self, snap: Snapshot) -> None:
        pg, c = self.pg, self.canvas
        c.fill(BACKGROUND)
        # Header: scenario, simulated time, progress through the episode.
        self._text(f"mtenv · {snap.scenario}", (14, 10), "title")
        self._text(
            f"t = {snap.time_s * 1e3:,.2f} ms   tasks {snap.arrived}/{snap.episode_tasks}",
            (480, 13),
            "big",
        )
        self._bar((880, 16, 386, 12), snap.arrived / max(snap.episode_tasks, 1), SKY_BLUE)
        pg.draw.line(c, BORDER, (0, 42), (WIDTH, 42))
        self._devices(snap, pg.Rect(10, 50, 880, 572))
        self._side(snap, pg.Rect(900, 50, 370, 572))
        self._strip(snap, pg.Rect(10, 630, 1260, 80))

    def _devices(self, snap: Snapshot, area) -> None:
        n = len(snap.devices)
        cols = max(1, math.ceil(math.sqrt(n * area.width / area.height / 1.6)))
        cols = n if n <= 3 else min(cols, n)
        rows = math.ceil(n / cols)
        gap = 8 if n <= 16 else 4
        w = (area.width - gap * (cols - 1)) // cols
        h = min((area.height - gap * (rows - 1)) // rows, 200)
        for i, dev in enumerate(snap.devices):
            r, col = divmod(i, cols)
            rect = self.pg.Rect(area.x + col * (w + gap), area.y + r * (h + gap), w, h)
            if h >= 150 and w >= 260:
                self._device_full(dev, rect, snap)
            else:
                self._device_compact(dev, rect)

    def _device_full(self, dev: DeviceView, rect, snap: Snapshot) -> None:
        pg, c = self.pg, self.canvas
        pg.draw.rect(c, PANEL, rect)
        pg.draw.rect(c, BORDER, rect, 1)
        x, y, w = rect.x + 10, rect.y + 8, rect.width - 20
        self._text(dev.name, (x, y), "big", width=w // 2)
        kind = f"{dev.kind.upper()}  ·  util {dev.utilization:.0%}"
        self._text(kind, (x + w - self.fonts["text"].size(kind)[0], y + 2), "text", MUTED)
        y += 28
        # Memory: bar plus the resident models' names.
        frac = dev.used_bytes / dev.capacity_bytes if dev.capacity_bytes else 0.0
        used, cap = _bytes(dev.used_bytes), _bytes(dev.capacity_bytes)
        self._text(f"memory {used} of {cap} ({frac:.0%})", (x, y), "small", MUTED)
        y += 15
        self._bar((x, y, w, 12), frac, SKY_BLUE)
        y += 16
        self._text("resident: " + (", ".join(dev.resident) or "none"), (x, y), "small", width=w)
        y += 22
        # Queue: a mark per queued task.
        self._text(f"queue {dev.queue_len}/{dev.max_queue}", (x, y), "small", MUTED)
        y += 16
        size, step = 12, 15
        fits = max(1, w // step)
        for j, mark in enumerate(dev.queued[:fits]):
            self._mark(x + j * step, y, size, mark.type, mark.priority_rank)
        if dev.queue_len > min(len(dev.queued), fits):
            more = f"+{dev.queue_len - min(len(dev.queued), fits)}"
            self._text(more, (x + w - self.fonts["small"].size(more)[0], y), "small", MUTED)
        if not dev.queue_len:
            self._text("empty", (x, y), "small", MUTED)
        y += size + 12
        # The batch in flight.
        b = dev.batch
        if b is None:
            self._text("idle", (x, y), "text", MUTED)
        else:
            label = b.label if b.loading else f"batch {b.label} × {b.size}"
            self._text(label, (x, y), "text", width=w - 50)
            pct = f"{b.progress:.0%}"
            self._text(pct, (x + w - self.fonts["text"].size(pct)[0], y), "text", MUTED)
            self._bar((x, y + 19, w, 10), b.progress, ORANGE if b.loading else BLUE)

    def _device_compact(self, dev: DeviceView, rect) -> None:
        pg, c = self.pg, self.canvas
        pg.draw.rect(c, PANEL, rect)
        pg.draw.rect(c, BORDER, rect, 1)
        x, y, w = rect.x + 4, rect.y + 3, rect.width - 8
        self._text(f"{dev.name} {dev.kind}", (x, y), "small", width=w)
        y += 15
        frac = dev.used_bytes / dev.capacity_bytes if dev.capacity_bytes else 0.0
        self._bar((x, y, w, 6), frac, SKY_BLUE)
        y += 9
        fits = max(1, (w - 24) // 7)
        for j, mark in enumerate(dev.queued[:fits]):
            self._mark(x + j * 7, y, 6, mark.type, mark.priority_rank)
        if dev.queue_len:
            q = str(dev.queue_len)
            self._text(q, (x + w - self.fonts["small"].size(q)[0], y - 3), "small", MUTED)
        y += 11
        if dev.batch is not None and y + 6 <= rect.bottom - 2:
            self._bar((x, y, w, 6), dev.batch.progress, ORANGE if dev.batch.loading else BLUE)

    def _side(self, snap: Snapshot, area) -> None:
        pg, c = self.pg, self.canvas
        x, y, w = area.x, area.y, area.width
        # The task being decided, highlighted.
        box = pg.Rect(x, y, w, 112)
        pg.draw.rect(c, HIGHLIGHT, box)
        pg.draw.rect(c, ORANGE, box, 2)
        self._text("deciding", (x + 10, y + 6), "small", MUTED)
        t = snap.task
        if t is None:
            self._text("episode over", (x + 10, y + 24), "big")
        else:
            self._mark(x + 10, y + 27, 14, t.type, t.priority_rank)
            self._text(f"task {t.id}: {t.type_name}", (x + 32, y + 24), "big", width=w - 42)
            self._text(
                f"difficulty L{t.difficulty}   priority {t.priority:g}", (x + 10, y + 50), "text"
            )
            colour = VERMILLION if t.slack_s < 0 else TEXT
            self._text(f"slack {t.slack_s * 1e3:,.1f} ms", (x + 10, y + 70), "text", colour)
        y += 120
        box = pg.Rect(x, y, w, 48)
        pg.draw.rect(c, PANEL, box)
        pg.draw.rect(c, BLUE, box, 2)
        self._text("last decision", (x + 10, y + 4), "small", MUTED)
        self._text(snap.last_action or "–", (x + 10, y + 20), "big", BLUE, width=w - 20)
        y += 58
        # Running metrics.
        rows = (
            ("accuracy", _fmt(snap.accuracy, ".1%")),
            ("SLO attainment", _fmt(snap.slo_attainment, ".1%")),
            ("p99 latency", _fmt(snap.latency_p99_ms, ",.1f") + " ms"),
            ("cost", f"${snap.cost_usd:.5f}"),
            ("episode return", f"{snap.episode_return:+.2f}"),
        )
        box = pg.Rect(x, y, w, 22 * len(rows) + 12)
        pg.draw.rect(c, PANEL, box)
        pg.draw.rect(c, BORDER, box, 1)
        for i, (name, value) in enumerate(rows):
            yy = y + 8 + 22 * i
            self._text(name, (x + 10, yy), "text", MUTED)
            self._text(value, (x + w - 10 - self.fonts["text"].size(value)[0], yy), "text")
        y = box.bottom + 10
        # Legend: task types by colour, priorities by shape.
        self._text("queued task colour = type, shape = priority", (x, y), "small", MUTED)
        y += 17
        xx = x
        for i, name in enumerate(snap.task_types):
            self._mark(xx, y + 1, 11, i, 0)
            xx += 16 + self._text(name, (xx + 15, y), "small") + 8
        y += 19
        xx = x
        labels = ("low", "high", "top")[: max(snap.n_priorities, 1)]
        for rank, name in enumerate(labels):
            self._mark(xx, y + 1, 11, 0, rank)
            xx += 16 + self._text(name, (xx + 15, y), "small") + 8
        y += 19
        self._bar((x, y + 2, 22, 8), 1.0, BLUE)
        self._text("batch running", (x + 28, y), "small")
        self._bar((x + 140, y + 2, 22, 8), 1.0, ORANGE)
        self._text("loading weights", (x + 168, y), "small")

    def _strip(self, snap: Snapshot, area) -> None:
        pg, c = self.pg, self.canvas
        pg.draw.line(c, BORDER, (0, area.y - 6), (WIDTH, area.y - 6))
        self._text("recent outcomes (newest right)", (area.x, area.y), "small", MUTED)
        xx = area.x + 230
        for name in OUTCOMES:
            pg.draw.rect(c, OUTCOME_COLOURS[name], (xx, area.y + 2, 10, 10))
            xx += 14 + self._text(name, (xx + 13, area.y), "small") + 10
        cell, n = 30, 40
        y = area.y + 22
        x0 = area.right - n * cell
        for i in range(n):
            pg.draw.rect(c, TRACK, (x0 + i * cell, y, cell - 3, 44), 1)
        outcomes = snap.outcomes[-n:]
        start = x0 + (n - len(outcomes)) * cell
        for i, name in enumerate(outcomes):
            rect = pg.Rect(start + i * cell, y, cell - 3, 44)
            pg.draw.rect(c, OUTCOME_COLOURS[name], rect)
            glyph = {"correct": "✓", "wrong": "✗", "late": "L", "rejected": "R", "dropped": "D"}
            s = self.fonts["big"].render(glyph[name], True, (255, 255, 255))
            c.blit(s, s.get_rect(center=rect.center))
