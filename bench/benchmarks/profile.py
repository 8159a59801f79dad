"""Where the API's time goes under createTask load, by library, beside the floor's."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

from bench.core import Benchmark, Figure, Report, format_number
from bench.creates import (
    Target,
    Window,
    celery_message_bytes,
    create_task_target,
    drain_queues,
    floor_target,
    load,
    start_floor,
    start_load,
)
from bench.processes import Agent
from bench.profiles import by_library, summarize
from bench.stack import Context, Stack, stack

CLIENTS = 32
WARMUP_SECONDS = 2.0
PROFILE_SECONDS = 6.0
# Twice `--profile`'s rate: a few thousand samples per server, so a 2 % share is
# ~50 samples, not noise.
PROFILE_RATE = 500
# py-spy needs a moment to attach before the load starts.
ATTACH_SECONDS = 1.0
# Every thread's samples (the event loop and the enqueue threads), with whole paths so
# that a frame's library can be told (`bench.profiles.library_of`).
PY_SPY_OPTIONS = ("--full-filenames",)
TOP_FUNCTIONS = 12
# Libraries with less of createTask's samples than this are not figures (they are in
# the details).
FIGURE_SHARE = 0.02

METHOD = f"""\
The API and the floor (as in `create`) each get {CLIENTS} closed-loop clients for
{WARMUP_SECONDS:g} s unmeasured, then {PROFILE_SECONDS:g} s while py-spy samples the
server process (every thread, idle ones left out, {PROFILE_RATE} times a second). Each sample
is charged to the library of the frame on top of its stack; a standard-library frame
counts for the nearest library that called it (the `json` of a response for whoever
encodes it), except asyncio and logging, shown apart. A library's µs per request is its
share of the samples times the server's CPU time per request (user + system, psutil)
over the same seconds. py-spy pauses the process at each sample, so the load is a little
lighter than in `create`; shares are what to read. The cyclic garbage collector has no
frame of its own: a collection is charged to whatever Python code was allocating when it
ran, which is how a cheap function (a constructor, an `__aenter__`) can rank high among
the functions on top. `python -m bench.profiles FILE` prints the same for a kept profile
(`--keep-logs`)."""


@dataclass(frozen=True)
class Profile:
    label: str
    window: Window
    total: int
    libraries: Counter[str]
    exclusive: Counter[str]

    def share(self, library: str) -> float:
        return self.libraries[library] / self.total if self.total else 0.0

    def us_per_request(self, library: str) -> float:
        return self.share(library) * self.window.server_cpu_us


async def _profile(bench: Stack, agent: Agent, target: Target) -> Profile:
    await load(agent, target, CLIENTS, 0, WARMUP_SECONDS)
    pid = target.server.child.pid
    profiler, output = await bench.start_profiler(
        target.label, pid, *PY_SPY_OPTIONS, rate=PROFILE_RATE
    )
    try:
        await asyncio.sleep(ATTACH_SECONDS)
        window = await load(agent, target, CLIENTS, 0, PROFILE_SECONDS)
    finally:
        await bench.stop_profiler(profiler)
    await drain_queues(bench.backing.redis_url, target.queue_keys)
    if window.errors:
        raise RuntimeError(f"{target.label} failed: {window.error_samples}")
    total, libraries = by_library(output)
    _, _, exclusive = summarize(output)
    return Profile(target.label, window, total, libraries, exclusive)


def _figures(product: Profile, floor: Profile) -> list[Figure]:
    figures = [
        Figure(f"{p.label}: server CPU per request while profiled", p.window.server_cpu_us, "µs")
        for p in (product, floor)
    ]
    for library, _ in product.libraries.most_common():
        if product.share(library) < FIGURE_SHARE:
            break
        measure = f"createTask: {library}, per request"
        shown = f"{100 * product.share(library):.0f} % of samples"
        figures.append(Figure(measure, product.us_per_request(library), "µs", spread=shown))
    return figures


def _library_rows(product: Profile, floor: Profile) -> list[str]:
    # createTask's order, then the floor's own.
    libraries = [name for name, _ in product.libraries.most_common()]
    libraries += [name for name, _ in floor.libraries.most_common() if name not in libraries]
    rows = []
    for library in libraries:
        cells = [library]
        for p in (product, floor):
            cells += [format_number(p.us_per_request(library)), f"{100 * p.share(library):.1f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _top_functions(p: Profile) -> list[str]:
    return [
        f"| {frame.replace('|', '/')} | {100 * samples / p.total:.1f} |"
        for frame, samples in p.exclusive.most_common(TOP_FUNCTIONS)
    ]


def _details(product: Profile, floor: Profile) -> list[str]:
    lines = [
        "| library | createTask µs per request | createTask % | floor µs per request | floor % |",
        "| --- | --- | --- | --- | --- |",
        *_library_rows(product, floor),
        "",
        f"Throughput while profiled: createTask {format_number(product.window.throughput)} "
        f"requests/s, floor {format_number(floor.window.throughput)}; samples: "
        f"{product.total:,} and {floor.total:,}.",
        "",
    ]
    for p in (product, floor):
        lines += [
            f"{p.label}: the functions most often on top of the stack:",
            "",
            "| function | % of samples |",
            "| --- | --- |",
            *_top_functions(p),
            "",
        ]
    return lines


async def run(context: Context) -> Report:
    async with stack(context, "profile") as bench:
        # Not `start_api`: under `--profile` it would have a py-spy of its own already.
        api = await bench.start_server("api", "bench.api_server")
        floor = await start_floor(bench, await celery_message_bytes(api, bench.backing.redis_url))
        agent = await start_load(bench)
        product_profile = await _profile(bench, agent, create_task_target(api))
        floor_profile = await _profile(bench, agent, floor_target(floor))
    return Report(
        figures=_figures(product_profile, floor_profile),
        details=_details(product_profile, floor_profile),
    )


BENCHMARK = Benchmark(
    name="profile",
    title="Where createTask's time goes: py-spy by library, beside the floor",
    method=METHOD,
    time_limit_seconds=90.0,
    run=run,
)
