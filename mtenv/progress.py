"""A dependency-free progress bar for long jobs (training, sweeps), written to stderr.

On a terminal it redraws one line; elsewhere (CI logs, files) it prints a line at every tenth
of the work so that logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 24


class ProgressBar:
    """``ProgressBar(total, label).update(done, note)``; ``say(text)`` between updates;
    ``close()`` ends the line."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None):
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._start = time.perf_counter()
        self._start_done: int | None = None
        self._warmed_up = False
        self._last_draw = 0.0
        self._last_tenth = -1
        self._line = ""

    def update(self, done: int, note: str = "") -> None:
        """Report ``done`` units finished (absolute, not an increment)."""
        now = time.perf_counter()
        if self._start_done is None:
            self._start_done = done  # a resumed job: rates count from here
        elif not self._warmed_up and done > self._start_done:
            # Rates count from the first progress: start-up (worker processes, the first
            # rollout) would otherwise make the first estimates far too long.
            self._warmed_up = True
            self._start, self._start_done = now, done
        tenth = 10 * min(done, self.total) // self.total
        if self.interactive:
            if now - self._last_draw < 0.1 and done < self.total:
                return
            self._last_draw = now
            self._line = self._format(done, now, note)
            self.stream.write("\r" + self._line.ljust(100))
            self.stream.flush()
        elif tenth > self._last_tenth:
            self._last_tenth = tenth
            self.stream.write(self._format(done, now, note) + "\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        """Say what the job is doing between updates (a stage that makes no progress of its
        own): on a terminal in place of the bar until the next update, elsewhere as a line."""
        line = f"{self.label} · {text}"
        if self.interactive:
            self._line = line
            self.stream.write("\r" + line.ljust(100))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive and self._line:
            self.stream.write("\n")
            self.stream.flush()

    def _format(self, done: int, now: float, note: str) -> str:
        frac = min(done / self.total, 1.0)
        filled = round(frac * _WIDTH)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        elapsed = now - self._start
        rate = (done - (self._start_done or 0)) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        parts = [f"{self.label} [{bar}] {frac:4.0%} {done:,}/{self.total:,}"]
        if note:
            parts.append(note)
        if rate > 0:
            parts.append(f"{rate:,.0f}/s")
            if done < self.total:
                parts.append(f"eta {_duration(eta)}")
        return " · ".join(parts)


def _duration(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "?"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
