"""``results.jsonl``: the one file a benchmark sweep writes as it goes, and reads to resume.

One JSON object per line, appended and flushed to disk the moment an episode finishes, so a
sweep killed at any instant loses at most the line it was writing. Two kinds of line:

``{"kind": "episode", ...}`` — one finished evaluation episode of one cell:

* ``scenario``, ``policy``, ``seed``: the cell (``seed`` is the training seed of a learner, and
  the index of the evaluation workload set for every policy, so results pair by seed);
* ``episode`` (0-based index within the cell) and ``eval_seed`` (the env seed it ran with);
* ``return``: the episode's return; ``metrics``: every metric the env reported, flattened to
  ``"a.b"`` keys with numbers only (:func:`mtenv.tools.evaluation.flatten_metrics`);
* ``latency_cdf_ms``: the latency (ms) at each percentile 0, 1, …, 100 of the episode's
  completed tasks (for latency CDFs), ``null`` when nothing completed;
* ``scenario_hash``: ``"sha256:…"`` of the resolved scenario, so a result is never compared
  with one of a changed scenario; ``versions``: package versions (mtenv, torch, numpy,
  gymnasium, ...);
* ``train``: for a policy trained in the sweep (or loaded from a run folder), ``{"run_dir": str,
  "cpu_s": float | null, "curve": [[env_step, episode_return], ...]}``; ``null`` otherwise;
* ``wall_s``: the episode's wall-clock seconds.

``{"kind": "failure", "scenario", "policy", "seed", "error", "traceback"}`` — a cell that raised;
the sweep went on. A resumed sweep runs failed cells again.

:func:`append` writes one line; :func:`read` reads them back and reports a malformed line (the
last one, when a crash cut it short) instead of failing on it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS = "results.jsonl"
EPISODE, FAILURE = "episode", "failure"
CELL_KEYS = ("scenario", "policy", "seed")


def cell_of(record: dict[str, Any]) -> tuple[str, str, int]:
    """The ``(scenario, policy, seed)`` cell a record belongs to."""
    return record["scenario"], record["policy"], int(record["seed"])


def append(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a line and force it to disk before returning.

    Non-finite floats are written as ``null`` (JSON has no NaN), so every line is strict JSON.
    """
    line = json.dumps(_finite(record), allow_nan=False, separators=(",", ":"))
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


@dataclass
class Records:
    """What a ``results.jsonl`` holds: its episode and failure records, in file order, and a
    note for each line that could not be read (line number and why)."""

    episodes: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def finished_episodes(self) -> dict[tuple[str, str, int], set[int]]:
        """Per cell, the indices of its finished episodes."""
        done: dict[tuple[str, str, int], set[int]] = {}
        for record in self.episodes:
            done.setdefault(cell_of(record), set()).add(int(record["episode"]))
        return done


def read(path: Path) -> Records:
    """Every well-formed record of ``path`` (empty when the file does not exist yet).

    A line that is not a JSON object of a known kind with its cell's keys (typically the last
    line, cut short by a crash) is skipped and reported in ``Records.skipped``; a later duplicate
    of an episode already read (same cell and episode index) is dropped.
    """
    records = Records()
    if not path.exists():
        return records
    seen: set[tuple[str, str, int, int]] = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                kind = record["kind"]
                cell = cell_of(record)
            except (ValueError, KeyError, TypeError) as exc:
                cut = "" if line.endswith("\n") else " (cut short: the sweep was killed mid-write)"
                records.skipped.append(f"{path.name}:{number}: unreadable line{cut}: {exc}")
                continue
            if kind == EPISODE:
                key = (*cell, int(record.get("episode", -1)))
                if key not in seen:
                    seen.add(key)
                    records.episodes.append(record)
            elif kind == FAILURE:
                records.failures.append(record)
            else:
                records.skipped.append(f"{path.name}:{number}: unknown record kind {kind!r}")
    return records


def repair(path: Path) -> bool:
    """End the file with a newline if a crash left its last line unfinished, so the next
    appended record starts on a line of its own; returns whether it had to."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return False
        f.write(b"\n")
        f.flush()
        os.fsync(f.fileno())
    return True


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
