"""What every benchmark module is made of: a `Benchmark`, the `Context` it runs in, and the
`Figure`s it reports."""

from __future__ import annotations

import math
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bench.stack import Context


@dataclass(frozen=True)
class Figure:
    """One measured number, with the target it is held against, if any."""

    measure: str
    value: float | None
    unit: str
    target: str = ""
    holds: bool | None = None
    spread: str = ""

    def shown(self) -> str:
        if self.value is None or math.isnan(self.value):
            return "n/a"
        return f"{format_number(self.value)} {self.unit}".strip()


def format_number(value: float) -> str:
    if math.isfinite(value) and value == int(value):
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def below(measure: str, value: float | None, unit: str, limit: float, spread: str = "") -> Figure:
    """A figure whose target is `< limit`."""
    holds = None if value is None else value < limit
    return Figure(measure, value, unit, f"< {limit:g} {unit}".strip(), holds, spread)


def at_least(
    measure: str, value: float | None, unit: str, limit: float, spread: str = ""
) -> Figure:
    """A figure whose target is `≥ limit`."""
    holds = None if value is None or math.isnan(value) else value >= limit
    return Figure(measure, value, unit, f"≥ {limit:g} {unit}".strip(), holds, spread)


def at_most(measure: str, value: float | None, unit: str, limit: float, spread: str = "") -> Figure:
    """A figure whose target is `≤ limit`."""
    holds = None if value is None or math.isnan(value) else value <= limit
    return Figure(measure, value, unit, f"≤ {limit:g} {unit}".strip(), holds, spread)


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    # Markdown lines for the benchmark's section in docs/benchmarks.md: per-repeat
    # figures, side measurements, what was seen.
    details: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    # How it is measured, in markdown, for docs/benchmarks.md.
    method: str
    # The benchmark is stopped (and reported as failed) after this long.
    time_limit_seconds: float
    run: Callable[[Context], Awaitable[Report]]


def percentile(values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile: the smallest value with `percent`% of values at or below."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float], unit: str) -> str:
    """`min to max over n repeats`, for a figure that is a median of repeats."""
    if len(values) < 2:
        return ""
    low, high = format_number(min(values)), format_number(max(values))
    return f"{low} to {high} {unit} over {len(values)} repeats"
