"""Every benchmark, in the order `python -m bench` runs them."""

from __future__ import annotations

from bench.benchmarks import (
    create,
    eventlog,
    fanout,
    first_change,
    idle,
    latency,
    memory,
    pipeline,
    polling,
    profile,
    scaling,
    web,
)
from bench.core import Benchmark

BENCHMARKS: list[Benchmark] = [
    latency.BENCHMARK,
    first_change.BENCHMARK,
    fanout.BENCHMARK,
    idle.BENCHMARK,
    polling.BENCHMARK,
    eventlog.BENCHMARK,
    create.BENCHMARK,
    pipeline.BENCHMARK,
    memory.BENCHMARK,
    profile.BENCHMARK,
    scaling.BENCHMARK,
    web.BENCHMARK,
]


def select(names: list[str]) -> list[Benchmark]:
    """The benchmarks named (all when none is); raise ValueError for an unknown name."""
    by_name = {benchmark.name: benchmark for benchmark in BENCHMARKS}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(
            f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(by_name)}"
        )
    return [benchmark for benchmark in BENCHMARKS if not names or benchmark.name in names]
