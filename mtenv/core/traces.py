"""Arrival trace files: load recorded arrival times for :class:`mtenv.core.arrivals.TraceArrivals`.

Two CSV shapes are read, both UTF-8 (a byte-order mark is allowed) with a header line; blank lines
are skipped, extra columns are ignored, column names are matched case-insensitively after
stripping spaces.

* **Timestamps** (:func:`load_timestamps_csv`): one arrival per row, in seconds, in a column
  named ``timestamp`` or ``timestamp_s``; or the Azure Functions 2021 invocation trace shape
  (``app,func,end_timestamp,duration``), where each arrival is ``end_timestamp − duration``.
* **Counts** (:func:`load_counts_csv`): arrivals per fixed bin (a minute by default), as in the
  Azure Functions 2019 trace: either a ``count`` column with one row per bin, or "wide" rows with
  one column per bin named ``1, 2, …, N`` (other columns such as ``HashFunction`` are ignored, and
  several rows, one per function, are summed).

A trace may come from someone else, so reading is bounded (:mod:`mtenv.core.limits`): only a
regular file is read (a pipe or a device could block or never end), its size is checked before
reading and the bytes read are counted too, and lines, rows and expanded arrivals are capped.
Messages never quote a line of the file: they give its number and what was expected, and at most a
short excerpt of a bad value in a row after a valid header.

Every problem raises :class:`TraceError`, a ``ValueError`` whose message starts with
``"{path}:{line}: "`` when a line is at fault (``"{path}: "`` when the file as a whole is) and
says what was expected, so it can be shown to a user as is.
"""

from __future__ import annotations

import contextlib
import csv
import math
import numbers
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mtenv.core import limits
from mtenv.messages import excerpt

__all__ = [
    "MAX_ARRIVALS",
    "TraceError",
    "load_counts_csv",
    "load_timestamps_csv",
    "write_timestamps_csv",
]

MAX_ARRIVALS = limits.MAX_ARRIVALS
"""Most arrivals a counts trace may expand to (400 MB of float64), against runaway files."""

_TIMESTAMP_COLUMNS = ("timestamp", "timestamp_s")
_BIN_NAME = re.compile(r"[0-9]+")
_INT = re.compile(r"\+?[0-9]+")


class TraceError(ValueError):
    """A trace file that cannot be read, with the file, the line (when one is at fault) and why.

    Attributes:
        path: the file as given.
        line: 1-based line number, or ``None`` for a problem with the whole file.
        reason: the message without the ``path:line:`` prefix.
    """

    def __init__(self, path: str | os.PathLike[str], line: int | None, reason: str) -> None:
        self.path = os.fspath(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + reason)

    def __reduce__(self) -> tuple[type[TraceError], tuple[str, int | None, str]]:
        # Exceptions pickle as cls(*args); keep the three-argument form (process pools).
        return (type(self), (self.path, self.line, self.reason))


# --------------------------------------------------------------------------------------------
# reading rows


def _lines(path: str, f: BinaryIO, counter: list[int]) -> Iterator[str]:
    """Decode ``f`` (binary) one bounded line at a time, so a decoding error names its exact line.

    ``counter[0]`` holds the number of the last line read (the csv reader may read several
    lines for one quoted field), which is the line an error is reported at. Lines longer than
    :data:`~mtenv.core.limits.MAX_TRACE_LINE_BYTES`, more bytes in all than
    :data:`~mtenv.core.limits.MAX_TRACE_BYTES` and more lines than
    :data:`~mtenv.core.limits.MAX_TRACE_ROWS` (plus the header) are refused.
    """
    max_line, max_bytes = limits.MAX_TRACE_LINE_BYTES, limits.MAX_TRACE_BYTES
    max_rows = limits.MAX_TRACE_ROWS
    total = 0
    while raw := f.readline(max_line + 1):
        counter[0] += 1
        total += len(raw)
        if len(raw) > max_line:
            raise TraceError(path, counter[0], f"line longer than {max_line} bytes")
        if total > max_bytes:
            raise TraceError(path, counter[0], f"file larger than {max_bytes} bytes")
        if counter[0] > max_rows + 1:
            raise TraceError(path, counter[0], f"more than {max_rows} rows")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise TraceError(path, counter[0], "not UTF-8 text; expected a UTF-8 CSV file") from err
        if counter[0] == 1:
            line = line.removeprefix("\ufeff")
        yield line


def _open(path: str) -> BinaryIO:
    """``path`` opened for reading, if it is a regular file no larger than the limit."""
    try:
        info = os.stat(path)
    except OSError as err:
        raise TraceError(path, None, f"cannot open the trace file ({err.strerror or err})") from err
    if stat.S_ISDIR(info.st_mode):
        raise TraceError(path, None, "is a folder; expected a CSV trace file")
    if not stat.S_ISREG(info.st_mode):
        raise TraceError(path, None, "expected a regular file (not a pipe, socket or device)")
    if info.st_size > limits.MAX_TRACE_BYTES:
        raise TraceError(
            path, None, f"file larger than {limits.MAX_TRACE_BYTES} bytes ({info.st_size} bytes)"
        )
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0)
    try:
        # O_NONBLOCK: should the path have become a pipe since the stat, open does not wait.
        fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise TraceError(path, None, f"cannot open the trace file ({err.strerror or err})") from err
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise TraceError(path, None, "expected a regular file (not a pipe, socket or device)")
    return os.fdopen(fd, "rb")


def _rows(path: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of each non-blank CSV row of ``path``."""
    f = _open(path)
    counter = [0]
    with f:
        reader = csv.reader(_lines(path, f, counter))
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise TraceError(path, counter[0], f"malformed CSV ({err})") from err
            except OSError as err:
                raise TraceError(path, None, f"cannot read the trace file ({err})") from err
            if any(field.strip() for field in row):
                yield counter[0], row


def _show(text: str) -> str:
    """A field for an error message: quoted, and shortened when long."""
    return excerpt(text)


def _field(path: str, line: int, row: list[str], col: int, name: str) -> str:
    """The stripped text of column ``col`` (named ``name``), or a TraceError if it is missing."""
    if col >= len(row):
        raise TraceError(path, line, f"missing the {name!r} column (the row has {len(row)} fields)")
    text = row[col].strip()
    if not text:
        raise TraceError(path, line, f"empty {name!r} value")
    return text


def _seconds(path: str, line: int, row: list[str], col: int, name: str) -> float:
    """A finite, non-negative number of seconds from column ``col``."""
    text = _field(path, line, row, col, name)
    expected = f"expected {name!r} to be a non-negative number of seconds"
    try:
        value = float(text)
    except ValueError:
        raise TraceError(path, line, f"{expected}, got {_show(text)}") from None
    if not math.isfinite(value):
        raise TraceError(path, line, f"{expected}, got {_show(text)} (not finite)")
    if value < 0:
        raise TraceError(path, line, f"{expected}, got {_show(text)} (negative)")
    return value


def _count(path: str, line: int, row: list[str], col: int, name: str) -> int:
    """A non-negative integer count from column ``col`` (``"3"`` or ``"3.0"``)."""
    text = _field(path, line, row, col, name)
    expected = f"expected {name!r} to be a non-negative integer count"
    if _INT.fullmatch(text):
        if len(text.lstrip("+0")) > 15:  # far above MAX_ARRIVALS; int() would also refuse huge
            raise TraceError(path, line, f"{expected} of at most {MAX_ARRIVALS}, got {_show(text)}")
        value = int(text)
    else:
        try:
            number = float(text)
        except ValueError:
            raise TraceError(path, line, f"{expected}, got {_show(text)}") from None
        if not (math.isfinite(number) and number.is_integer() and number >= 0):
            raise TraceError(path, line, f"{expected}, got {_show(text)}")
        value = int(number)
    if value > MAX_ARRIVALS:
        raise TraceError(path, line, f"{expected} of at most {MAX_ARRIVALS}, got {_show(text)}")
    return value


def _header(
    path: str, rows: Iterator[tuple[int, list[str]]], expected: str
) -> tuple[int, list[str]]:
    """The header row as ``(line, lower-cased names)``; a TraceError for an empty file."""
    first = next(rows, None)
    if first is None:
        raise TraceError(path, 1, f"empty file; expected a header line with {expected}")
    line, names = first
    return line, [name.strip().lower() for name in names]


def _found(names: list[str]) -> str:
    """What a header naming none of the expected columns holds, without quoting it (the file
    may not be a trace at all)."""
    return f"found {len(names)} column(s), none of them expected"


def _column(path: str, line: int, names: list[str], name: str) -> int:
    """Index of the column ``name``, which must occur once."""
    if names.count(name) > 1:
        raise TraceError(path, line, f"the header names the {name!r} column more than once")
    return names.index(name)


def _finish(path: str, last_line: int, times: np.ndarray) -> np.ndarray:
    """Check that ``times`` (sorted) are at least two with a positive span."""
    if times.size < 2:
        raise TraceError(
            path, last_line, f"expected at least 2 arrivals after the header, found {times.size}"
        )
    if not times[-1] > times[0]:
        raise TraceError(
            path, last_line, "all arrivals are at the same time; expected a positive time span"
        )
    return times


# --------------------------------------------------------------------------------------------
# public API


def load_timestamps_csv(path: str | os.PathLike[str]) -> np.ndarray:
    """Arrival times (s) from a timestamps CSV: float64, sorted ascending, the first at 0.

    The header must name one time column: ``timestamp`` or ``timestamp_s`` (seconds), or
    ``end_timestamp`` with an optional ``duration`` (Azure Functions 2021 shape: the arrival is
    ``end_timestamp − duration``, which may precede the trace start before the shift to 0). Values
    must be finite, non-negative numbers. Rows need not be in order: the times are sorted (a
    stable sort, so equal times keep their file order), then shifted so that the first is 0. At
    least two arrivals with a positive span are required.

    Raises:
        TraceError: the file cannot be read, or a line is malformed (message ``path:line: ...``).
    """
    p = os.fspath(path)
    rows = _rows(p)
    expected = "a 'timestamp', 'timestamp_s' or 'end_timestamp' column"
    hline, names = _header(p, rows, expected)
    present = [name for name in _TIMESTAMP_COLUMNS if name in names]
    duration_col: int | None = None
    if len(present) > 1:
        raise TraceError(
            p, hline, "the header names both 'timestamp' and 'timestamp_s'; expected one of them"
        )
    if present:
        name = present[0]
        col = _column(p, hline, names, name)
    elif "end_timestamp" in names:
        name = "end_timestamp"
        col = _column(p, hline, names, name)
        if "duration" in names:
            duration_col = _column(p, hline, names, "duration")
    else:
        raise TraceError(p, hline, f"expected a header line with {expected}; {_found(names)}")

    times: list[float] = []
    last = hline
    for line, row in rows:
        value = _seconds(p, line, row, col, name)
        if duration_col is not None:
            value -= _seconds(p, line, row, duration_col, "duration")
        times.append(value)
        last = line
    out = np.sort(np.asarray(times, dtype=np.float64), kind="stable")
    out = _finish(p, last, out)
    return out - out[0]


def load_counts_csv(
    path: str | os.PathLike[str], bin_s: float = 60.0, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Arrival times (s) expanded from a per-bin counts CSV: float64, sorted ascending.

    Two shapes (see the module docstring): a ``count`` column, one row per bin in order; or wide
    rows whose bin columns are named ``1, 2, …, N`` (Azure Functions 2019: one row per function,
    1440 minute columns), summed over rows. Counts must be non-negative integers.

    Bin ``i`` (from 0) covers ``[i·bin_s, (i+1)·bin_s)``; its ``c`` arrivals are placed uniformly
    at random in it (``rng``, default ``np.random.default_rng(0)``, so a file always expands to the
    same times unless a generator is passed). Times are *not* shifted: 0 is the start of the first
    bin, so time of day is kept. At most :data:`MAX_ARRIVALS` arrivals, and at least two.

    Raises:
        ValueError: ``bin_s`` is not a finite number > 0.
        TraceError: the file cannot be read, or a line is malformed (message ``path:line: ...``).
    """
    if isinstance(bin_s, bool) or not isinstance(bin_s, numbers.Real):
        raise ValueError(f"bin_s must be a number of seconds, got {bin_s!r}")
    if not (math.isfinite(bin_s) and bin_s > 0):
        raise ValueError(f"bin_s must be finite and > 0, got {bin_s!r}")
    if rng is None:
        rng = np.random.default_rng(0)
    p = os.fspath(path)
    rows = _rows(p)
    expected = "a 'count' column or bin columns named 1, 2, 3, ..."
    hline, names = _header(p, rows, expected)

    counts: list[int] = []
    total = 0
    last = hline
    if "count" in names:
        col = _column(p, hline, names, "count")
        for line, row in rows:
            c = _count(p, line, row, col, "count")
            total += c
            if total > MAX_ARRIVALS:
                raise TraceError(p, line, f"more than {MAX_ARRIVALS} arrivals in total")
            counts.append(c)
            last = line
    else:
        bins = sorted((int(n), i) for i, n in enumerate(names) if _BIN_NAME.fullmatch(n))
        if not bins:
            raise TraceError(p, hline, f"expected a header line with {expected}; {_found(names)}")
        found_bins = [b for b, _ in bins]
        if found_bins != list(range(1, len(bins) + 1)):
            raise TraceError(
                p,
                hline,
                f"expected bin columns numbered 1 to {len(bins)} without gaps or repeats, "
                f"found {', '.join(map(str, found_bins[:8]))}{', ...' if len(bins) > 8 else ''}",
            )
        columns = [i for _, i in bins]
        counts = [0] * len(columns)
        for line, row in rows:
            for k, i in enumerate(columns):
                c = _count(p, line, row, i, names[i])
                counts[k] += c
                total += c
            if total > MAX_ARRIVALS:
                raise TraceError(p, line, f"more than {MAX_ARRIVALS} arrivals in total")
            last = line
        if last == hline:
            raise TraceError(p, hline, "expected at least one row of counts after the header")

    per_bin = np.asarray(counts, dtype=np.int64)
    start = np.repeat(np.arange(per_bin.size, dtype=np.float64), per_bin)
    times = np.sort((start + rng.random(start.size)) * float(bin_s))
    return _finish(p, last, times)


def write_timestamps_csv(
    path: str | os.PathLike[str], timestamps: Sequence[float] | np.ndarray
) -> Path:
    """Write arrival times (s) as a ``timestamp_s`` CSV that :func:`load_timestamps_csv` reads.

    Values are written in the shortest form that reads back to the same float64. The file is
    written to a temporary file in the same folder and moved into place with ``os.replace``, so a
    crash never leaves a half-written trace.

    Raises:
        ValueError: ``timestamps`` is not 1-D, or holds a negative or non-finite value.
    """
    values = np.asarray(timestamps, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"timestamps must be 1-D, got shape {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("timestamps must be finite and non-negative")
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write("timestamp_s\n")
            f.writelines(f"{v!r}\n" for v in values.tolist())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target
