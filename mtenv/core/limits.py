"""Bounds on what a scenario file or a trace may ask for, each with its reason.

Scenario files and traces may come from someone else. These bounds keep loading, validating
and running one in bounded time and memory: a file can be refused, never make mtenv hang or
swallow the machine's memory. Each bound sits far above what a realistic scenario needs (the
reason says how far), and :data:`LIMITS` lists them for the schema reference
(``docs/scenario-schema.md``, section *Limits*), so the documentation cannot drift from the code.

The readers look the trace and YAML bounds up on this module at call time (tests lower them).
"""

from __future__ import annotations

from typing import NamedTuple

from mtenv.messages import MAX_EXCERPT_CHARS

# --- files ---------------------------------------------------------------------------------

MAX_SCENARIO_BYTES = 1 << 20
"""Largest scenario file read (1 MiB); the shipped ones are under 3 KB."""

MAX_YAML_DEPTH = 40
"""Deepest nesting of YAML blocks and lists; a scenario's deepest field is 5 levels down."""

MAX_YAML_NODES = 100_000
"""Most values a scenario file may hold once its aliases are expanded (an alias counts as many
values as what it stands for), against "billion laughs" alias bombs."""

MAX_TRACE_BYTES = 512 << 20
"""Largest trace file read (512 MiB): room for the row limit at 100 bytes a row (the shipped
sample of the Azure 2021 shape averages 34 bytes a row)."""

MAX_TRACE_LINE_BYTES = 64 << 10
"""Longest trace line (64 KiB); the shipped Azure 2019 sample's rows of 1440 minute counts
average 3.3 KB."""

MAX_TRACE_ROWS = 5_000_000
"""Most rows a trace may have: their parsed timestamps take 40 MB (8 bytes each)."""


MAX_ARRIVALS = 50_000_000
"""Most arrivals a counts trace may expand to (400 MB of float64)."""

# --- scenario values -----------------------------------------------------------------------

MAX_EPISODE_TASKS = 10_000_000
"""Most tasks per episode: every task is one env step and its record is kept until the episode
ends; 10⁷ is 2000 times the longest shipped episode (5000 tasks)."""

MAX_DEVICES = 4096
"""Most devices in all (entries times ``count``): the action space grows with plans × devices;
the largest shipped cluster has 64."""

MAX_LIST_ITEMS = 256
"""Most offered models, plans, priority classes, profile overrides or resident models; each is
a row of the action space, a mixture component or a table entry."""

MAX_MEMBERS = 16
"""Most models in one ensemble (each runs on every task the ensemble serves)."""

MAX_NAME_CHARS = 200
"""Longest scenario, plan, device or class name (names label metrics and actions)."""

MIN_RATE = 1e-3
"""Smallest positive arrival rate (one task every 17 minutes): slower processes spend unbounded
simulated time and random draws per task."""

MAX_RATE = 1e7
"""Largest arrival rate (tasks per second), 250 times the largest shipped one (40 000/s)."""

MIN_SECONDS = 1e-6
"""Shortest on/off sojourn or diurnal period (1 µs, far below any latency simulated)."""

MAX_SECONDS = 1e9
"""Longest time in seconds (about 30 years): a start, a duration, a sojourn or a period."""

MIN_ARRIVALS_PER_CYCLE = 0.01
"""Fewest expected arrivals per on/off cycle (``rate_on·mean_on_s + rate_off·mean_off_s``):
each state switch costs a draw, so fewer means more than 100 switches per task (and such a
process is indistinguishable from Poisson at its mean rate)."""

MAX_MEMORY_GB = 1e6
"""Largest device memory (a petabyte): bytes stay exact in float64."""

MAX_AMOUNT = 1e9
"""Largest price, latency objective, timeout, weight or reward coefficient: keeps sums over an
episode finite."""

MIN_SCALE, MAX_SCALE = 1e-3, 1e3
"""Range of ``load_scale`` (the arrival rate's multiplier)."""

MIN_CV, MAX_CV = 0.01, 100.0
"""Range of a Gamma process's coefficient of variation (shapes 10⁻⁴ to 10⁴)."""


class Limit(NamedTuple):
    """One bound, as the schema reference lists it."""

    what: str
    value: str
    reason: str


def limits_table() -> list[Limit]:
    """Every bound with its value and reason (for ``docs/scenario-schema.md``)."""
    return [
        Limit("scenario file size", "1 MiB", "the shipped scenarios are under 3 KB"),
        Limit(
            "YAML nesting depth",
            str(MAX_YAML_DEPTH),
            "a scenario's deepest field is 5 levels down",
        ),
        Limit(
            "YAML values after expanding aliases",
            f"{MAX_YAML_NODES:,}",
            "an alias counts as many values as it stands for, which stops alias bombs "
            "('billion laughs') before they are expanded",
        ),
        Limit("duplicate YAML keys", "none", "a repeated key would silently replace a value"),
        Limit(
            "trace file size",
            "512 MiB",
            "room for the row limit at 100 bytes a row (the shipped Azure 2021 sample averages "
            "34); the size is checked before reading and the bytes read are counted too",
        ),
        Limit(
            "trace files",
            "regular files only",
            "reading a pipe or a device could wait forever or never end",
        ),
        Limit(
            "trace line length",
            "64 KiB",
            "the shipped Azure 2019 sample's rows of 1440 minute counts average 3.3 KB",
        ),
        Limit(
            "trace rows",
            f"{MAX_TRACE_ROWS:,}",
            "their parsed timestamps take 40 MB (8 bytes each)",
        ),
        Limit(
            "arrivals expanded from a counts trace",
            f"{MAX_ARRIVALS:,}",
            "400 MB of arrival times",
        ),
        Limit(
            "`episode_tasks`",
            f"{MAX_EPISODE_TASKS:,}",
            "each task is one env step whose record is kept to the episode's end; 2000 times "
            "the longest shipped episode (5000 tasks)",
        ),
        Limit(
            "devices in all (entries × `count`)",
            str(MAX_DEVICES),
            "the action space grows with plans × devices; the largest shipped cluster has 64",
        ),
        Limit(
            "models, plans, priority classes, profile overrides, resident models",
            f"{MAX_LIST_ITEMS} each",
            "each is a row of the action space, a mixture component or a table entry",
        ),
        Limit("ensemble members", str(MAX_MEMBERS), "each runs on every task the ensemble serves"),
        Limit("names", f"{MAX_NAME_CHARS} characters", "names label metrics and actions"),
        Limit(
            "arrival rates",
            f"{MIN_RATE:g} (or 0 where allowed) to {MAX_RATE:g} per second",
            "slower processes spend unbounded simulated time and draws per task; the largest "
            "shipped rate is 40 000/s",
        ),
        Limit(
            "times in seconds (starts, durations, sojourns, periods)",
            f"{MIN_SECONDS:g} (sojourns, periods) to {MAX_SECONDS:g}",
            "about 30 years at most; a microsecond is far below any latency simulated",
        ),
        Limit(
            "expected arrivals per on/off cycle",
            f">= {MIN_ARRIVALS_PER_CYCLE:g}",
            "each state switch costs a draw: fewer means over 100 switches per task, and such a "
            "process is indistinguishable from Poisson at its mean rate",
        ),
        Limit("Gamma `cv`", f"{MIN_CV:g} to {MAX_CV:g}", "Gamma shapes 10⁻⁴ to 10⁴"),
        Limit("`load_scale`", f"{MIN_SCALE:g} to {MAX_SCALE:g}", "the arrival rate's multiplier"),
        Limit("device memory", f"{MAX_MEMORY_GB:g} GB", "bytes stay exact in float64"),
        Limit(
            "prices, SLOs, timeouts, weights, reward coefficients, profile scales",
            f"<= {MAX_AMOUNT:g}",
            "sums over an episode stay finite",
        ),
        Limit(
            "excerpt of a bad value in an error message",
            f"{MAX_EXCERPT_CHARS} characters",
            "messages stay one short line and do not reproduce files",
        ),
    ]
