"""The browser app in Chromium: how much JavaScript the dashboard's first load costs, that
GraphiQL's code stays on its own page, how long a worker's commit takes to show on the
dashboard with 20 tasks streaming, and whether the page's JS heap grows with updates."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Page, async_playwright

from bench.agents.page_writer import percent_of
from bench.api import Api
from bench.core import Benchmark, Figure, Report, at_most, below, percentile
from bench.processes import Agent
from bench.stack import Context, Stack, stack
from graphql_app.http.web import WEB_DIST

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TARGET_KIB = 200.0
KIB = 1024
LOAD_TIMEOUT_MS = 60_000
# Commit to pixels: 20 tasks (one page of the task list), each streaming at its most (a
# write every 50 ms, AITASKS_STREAM_FLUSH_SECONDS), so 400 changes/s in all.
TASKS = 20
RATE = 400.0
TARGET_P99_MS = 50.0
# Changes per task in the timed window: fewer than the writer's 99-percent cycle, so each
# (task, percent) names one change.
WINDOW_PER_TASK = 90
# Heap: updates the page received (claims included) at the first and second reading.
HEAP_FIRST, HEAP_SECOND = 500, 5_000
# A third reading, without a target: whether what grew from the first to the second keeps
# growing (retained data) or was a one-off (the engine's compiled code and caches).
HEAP_THIRD = 10_000
HEAP_GROWTH_MAX_PERCENT = 10.0
CATCH_UP_TIMEOUT_MS = 60_000

METHOD = f"""\
A fresh API process serves the built app (`make web`); Chromium ({CHROMIUM}, through
Playwright) opens `/` and then `/graphql` in fresh contexts and waits until each is ready
to use (the dashboard's heading; GraphiQL's query editor, which needs Monaco, loaded by a
dynamic import after GraphiQL starts) and the network is quiet. Every JavaScript file
each page fetched is counted at the size of the gzip copy the build made of it (what a
browser that accepts gzip is sent; Brotli is smaller still).
"Dashboard loads GraphiQL" counts GraphiQL's own chunks (its entry, Monaco) among the
dashboard's requests: it must be 0. Target: the dashboard's first-load JavaScript, gzip,
≤ {TARGET_KIB:g} KiB.

Commit to pixels: {TASKS} demo tasks are created and the dashboard's task list (`/`, one
page of {TASKS} rows, the API's auth off as for every benchmark, so no login) is opened in
Chromium. A writer process plays the worker (bench/agents/page_writer.py): it claims the
tasks, then commits changes with `task_writes.record_output` and publishes each after the
commit, as `WorkerRuntime.write` does, round robin over the tasks at {RATE:g} changes/s in
all ({RATE / TASKS:g}/s per task, a streaming task's most), taking `time.time()` right after
each commit. Each change of a task sets a different progress, so the row's progress bar
(`aria-valuenow`) changes with it. In the page a MutationObserver takes
`performance.timeOrigin + performance.now()` when a row's `aria-valuenow` changes (the DOM
shows the change; corrected by the page's offset from `Date.now()`), and again in the next
`requestAnimationFrame` callback (the frame that paints it is being made; the paint itself
is not observable from the page). Delay = that time minus the commit's (same machine,
same clock). A change the page never showed by itself (React rendered a later one of the
same task in the same pass) is counted at the time the next change of its task showed.
To split the delay, a WebSocket listener installed before the app's own code takes the
time each change's `taskUpdates` message reaches the page's main thread: commit → page
receives it is the server's fan-out, the network and any wait for a busy main thread;
the rest is the page's own work. The window is {TASKS * WINDOW_PER_TASK:,} changes
({WINDOW_PER_TASK} per task). Target: p99 < {TARGET_P99_MS:g} ms.

JS heap: the same page; after {HEAP_FIRST:,} updates (the {TASKS} claims and
{HEAP_FIRST - TASKS} changes) and after {HEAP_SECOND:,}, once the page shows the last change
of every task, CDP's `HeapProfiler.collectGarbage` (twice) and then `Runtime.getHeapUsage`
give the used heap. The observer is removed and its records dropped before the second
reading. Target: growth ≤ {HEAP_GROWTH_MAX_PERCENT:g}%. A third reading after
{HEAP_THIRD:,} updates shows whether that growth goes on. After each reading a heap
snapshot (`HeapProfiler.takeHeapSnapshot`) splits the heap by node type: compiled code
(which grows as V8 compiles and optimizes the functions that got hot, not with what the
page keeps) and the page's own objects, closures and strings (what a leak would grow)."""


def gzip_bytes(path: str) -> int:
    """The size of a built file's gzip copy (its own size when too small to have one)."""
    file = WEB_DIST / path.lstrip("/")
    compressed = Path(f"{file}.gz")
    return (compressed if compressed.exists() else file).stat().st_size


# What shows that a page is ready to use: the dashboard's heading; GraphiQL's query editor,
# which GraphiQL mounts only after a dynamic import of Monaco (the network can go quiet
# before that import starts, and a count taken then leaves Monaco out).
DASHBOARD_READY = "h1"
GRAPHIQL_READY = ".graphiql-query-editor .monaco-editor"


async def scripts_of(base_url: str, path: str, ready: str) -> list[str]:
    """The paths of the JavaScript files a first visit to `path` fetched by the time the
    page shows `ready` (a selector) and its network went quiet, each once, in the order
    first fetched."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context()
        fetched: list[str] = []
        context.on("request", lambda request: fetched.append(request.url))
        page = await context.new_page()
        await page.goto(f"{base_url}{path}", wait_until="networkidle", timeout=LOAD_TIMEOUT_MS)
        await page.locator(ready).first.wait_for(timeout=LOAD_TIMEOUT_MS)
        await page.wait_for_load_state("networkidle", timeout=LOAD_TIMEOUT_MS)
        await browser.close()
    # Each file once: GraphiQL fetches its json.worker twice, and counting it twice put
    # 114 KiB too many in the page's size.
    paths = (urlsplit(url).path for url in fetched)
    return list(dict.fromkeys(path for path in paths if path.endswith(".js")))


# Installed before the page's own code: each WebSocket message's arrival on the page's main
# thread (the first listener of the socket, ahead of graphql-ws's), kept only while
# window.__received is a list.
RECEIVE = """(() => {
  const Native = window.WebSocket;
  window.__received = null;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        if (window.__received) {
          window.__received.push([performance.timeOrigin + performance.now(), event.data]);
        }
      });
    }
  };
})();"""

OBSERVE = """() => {
  window.__received = [];
  window.__seen = [];
  window.__frames = [];
  window.__observer = new MutationObserver((records) => {
    const at = performance.timeOrigin + performance.now();
    const batch = window.__frames.length;
    window.__frames.push(null);
    requestAnimationFrame(() => {
      window.__frames[batch] = performance.timeOrigin + performance.now();
    });
    for (const record of records) {
      const row = record.target.closest && record.target.closest("tr[data-task-id]");
      if (!row) continue;
      const percent = Number(record.target.getAttribute("aria-valuenow"));
      window.__seen.push([row.dataset.taskId, percent, at, batch]);
    }
  });
  window.__observer.observe(document.body, {
    subtree: true, attributes: true, attributeFilter: ["aria-valuenow"],
  });
}"""

COLLECT = """() => {
  window.__observer.disconnect();
  const out = {
    received: window.__received,
    seen: window.__seen,
    frames: window.__frames,
    skew: performance.timeOrigin + performance.now() - Date.now(),
  };
  window.__observer = null;
  window.__received = null;
  window.__seen = null;
  window.__frames = null;
  return out;
}"""

SHOWS = """(percent) => {
  const bars = document.querySelectorAll("tr[data-task-id] [aria-valuenow]");
  return bars.length > 0 && [...bars].every((bar) => bar.getAttribute("aria-valuenow") === percent);
}"""


def delays_ms(
    task_ids: list[str], ran: dict[str, Any], seen: list[list[Any]], at: int
) -> tuple[list[float], int]:
    """Commit-to-shown delays of the window's changes, and how many were never shown by
    themselves (each counted at the time the next change of its task showed)."""
    committed = {(index, sequence): when for index, sequence, when, _ in ran["changes"]}
    first: dict[tuple[int, int], float] = {}
    index_of = {task_id: index for index, task_id in enumerate(task_ids)}
    for task_id, percent, *times in seen:
        if task_id not in index_of or times[at] is None:
            continue
        key = (index_of[task_id], int(percent))
        first[key] = min(first.get(key, math.inf), times[at])
    per_task: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for index, sequence, percent in ran["shown"]:
        per_task[index].append((sequence, percent))
    delays, unshown = [], 0
    for index, changes in per_task.items():
        later = math.inf
        for sequence, percent in sorted(changes, reverse=True):
            own = first.get((index, percent))
            if own is None:
                unshown += 1
            else:
                later = own
            if later < math.inf:
                delays.append(later - committed[(index, sequence)] * 1000)
    return delays, unshown


def received_ms(
    task_ids: list[str], ran: dict[str, Any], received: list[list[Any]], skew: float
) -> list[float]:
    """Commit-to-receipt delays: from each change's commit to its `taskUpdates` message
    reaching the page's main thread."""
    index_of = {task_id: index for index, task_id in enumerate(task_ids)}
    first: dict[tuple[int, int], float] = {}
    for at, data in received:
        payload = json.loads(data).get("payload") or {}
        task = ((payload.get("data") or {}).get("taskUpdates") or {}).get("task")
        if not task or task["id"] not in index_of:
            continue
        key = (index_of[task["id"]], round(task["progress"] * 100))
        first.setdefault(key, at - skew)
    committed = {(index, sequence): when for index, sequence, when, _ in ran["changes"]}
    return [
        first[(index, percent)] - committed[(index, sequence)] * 1000
        for index, sequence, percent in ran["shown"]
        if (index, percent) in first
    ]


# The node types of a V8 heap snapshot that hold what the page's code keeps: its objects,
# functions and strings. The rest is the engine's: compiled code ("code"), its internal
# arrays and caches ("array", "hidden"), and Blink's objects ("native").
DATA_NODE_TYPES = frozenset(
    {"object", "closure", "string", "concatenated string", "sliced string", "number",
     "regexp", "symbol", "bigint", "object shape"}
)  # fmt: skip


@dataclass(frozen=True)
class HeapReading:
    used: int  # Runtime.getHeapUsage's usedSize
    code: int  # a snapshot's nodes of type "code"
    data: int  # a snapshot's nodes of DATA_NODE_TYPES


def _bytes_by_type(snapshot: dict[str, Any]) -> Counter[str]:
    """A V8 heap snapshot's node sizes, summed by node type."""
    meta = snapshot["snapshot"]["meta"]
    fields: list[str] = meta["node_fields"]
    names: list[str] = meta["node_types"][0]
    kind, size, width = fields.index("type"), fields.index("self_size"), len(fields)
    nodes: list[int] = snapshot["nodes"]
    sizes: Counter[str] = Counter()
    for i in range(0, len(nodes), width):
        sizes[names[nodes[i + kind]]] += nodes[i + size]
    return sizes


async def heap_bytes(page: Page) -> HeapReading:
    """The page's used JS heap after two collections, and what a snapshot taken right
    after counts as compiled code and as the page's data."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("HeapProfiler.collectGarbage")
    await cdp.send("HeapProfiler.collectGarbage")
    usage = await cdp.send("Runtime.getHeapUsage")
    chunks: list[str] = []
    cdp.on("HeapProfiler.addHeapSnapshotChunk", lambda event: chunks.append(event["chunk"]))
    await cdp.send("HeapProfiler.takeHeapSnapshot", {"reportProgress": False})
    await cdp.detach()
    sizes = _bytes_by_type(json.loads("".join(chunks)))
    return HeapReading(
        int(usage["usedSize"]), sizes["code"], sum(sizes[name] for name in DATA_NODE_TYPES)
    )


async def write(writer: Agent, page: Page, per_task: int, done: list[int]) -> dict[str, Any]:
    """`per_task` changes to every task at RATE; return once the page shows the last."""
    count = per_task * TASKS
    ran = await writer.request("run", "ran", count / RATE * 3 + 60, rate=RATE, count=count)
    done[0] += per_task
    await page.wait_for_function(
        SHOWS, arg=str(percent_of(done[0] - 1)), timeout=CATCH_UP_TIMEOUT_MS
    )
    return dict(ran)


async def live_page(bench_stack: Stack, api: Api) -> tuple[list[Figure], list[str]]:
    base_url = f"http://127.0.0.1:{api.port}"
    task_ids = await api.create_tasks(TASKS)
    params = {"database_url": bench_stack.database_url, "redis_url": bench_stack.backing.redis_url}
    writer = await bench_stack.agent("page-writer", "bench.agents.page_writer", params)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # The page's CSP forbids eval, which Playwright's waits and evaluations use.
        context = await browser.new_context(bypass_csp=True)
        await context.add_init_script(RECEIVE)
        page = await context.new_page()
        await page.goto(f"{base_url}/", wait_until="networkidle", timeout=LOAD_TIMEOUT_MS)
        await page.wait_for_function(
            f"document.querySelectorAll('tr[data-task-id]').length === {TASKS}",
            timeout=LOAD_TIMEOUT_MS,
        )
        claimed = await writer.request("claim", "claimed", 120, task_ids=task_ids)
        if claimed["claimed"] != TASKS:
            raise RuntimeError(f"the writer claimed {claimed['claimed']} of {TASKS} tasks")
        done = [0]
        # The claims are the first TASKS updates; the rest of the first HEAP_FIRST follow.
        await write(writer, page, (HEAP_FIRST - TASKS) // TASKS, done)
        first = await heap_bytes(page)
        await page.evaluate(OBSERVE)
        window = await write(writer, page, WINDOW_PER_TASK, done)
        observed = await page.evaluate(COLLECT)
        rest = HEAP_SECOND - TASKS - done[0] * TASKS
        await write(writer, page, rest // TASKS, done)
        updates = TASKS + done[0] * TASKS
        second = await heap_bytes(page)
        await write(writer, page, (HEAP_THIRD - HEAP_SECOND) // TASKS, done)
        updates_third = TASKS + done[0] * TASKS
        third = await heap_bytes(page)
        await browser.close()
    await writer.request("close", "closed", 60)
    await bench_stack.stop_agent(writer)

    skew = float(observed["skew"])
    seen = [
        [task_id, percent, at - skew, observed["frames"][batch]]
        for task_id, percent, at, batch in observed["seen"]
    ]
    seen = [
        [task_id, percent, at, None if frame is None else frame - skew]
        for task_id, percent, at, frame in seen
    ]
    dom, unshown = delays_ms(task_ids, window, seen, 0)
    frame, _ = delays_ms(task_ids, window, seen, 1)
    receipt = received_ms(task_ids, window, observed["received"], skew)
    growth = (second.used - first.used) / first.used * 100
    growth_on = (third.used - second.used) / second.used * 100
    code_growth = (second.code - first.code) / first.code * 100
    data_growth = (second.data - first.data) / first.data * 100
    achieved = len(window["changes"]) / window["seconds"]
    label = f"{TASKS} tasks streaming, {achieved:.0f} changes/s"
    figures = [
        Figure(f"{label}: p50 commit → page receives it", percentile(receipt, 50), "ms"),
        Figure(f"{label}: p99 commit → page receives it", percentile(receipt, 99), "ms"),
        Figure(f"{label}: p50 commit → DOM shows it", percentile(dom, 50), "ms"),
        below(f"{label}: p99 commit → DOM shows it", percentile(dom, 99), "ms", TARGET_P99_MS),
        Figure(f"{label}: p50 commit → next animation frame", percentile(frame, 50), "ms"),
        below(
            f"{label}: p99 commit → next animation frame",
            percentile(frame, 99),
            "ms",
            TARGET_P99_MS,
        ),
        Figure(f"JS heap after {HEAP_FIRST:,} updates", first.used / 1e6, "MB"),
        Figure(f"JS heap after {updates:,} updates", second.used / 1e6, "MB"),
        at_most(
            f"JS heap growth, {updates:,} against {HEAP_FIRST:,} updates",
            growth,
            "%",
            HEAP_GROWTH_MAX_PERCENT,
        ),
        Figure(f"JS heap growth, {updates_third:,} against {updates:,} updates", growth_on, "%"),
        Figure(
            f"compiled code in the heap, growth, {updates:,} against {HEAP_FIRST:,} updates",
            code_growth,
            "%",
        ),
        Figure(
            f"the page's objects, closures and strings, growth, {updates:,} against "
            f"{HEAP_FIRST:,} updates",
            data_growth,
            "%",
        ),
    ]
    details = [
        f"- Commit to pixels: {len(window['changes']):,} changes committed in "
        f"{window['seconds']:.1f} s (writer at most {window['late'] * 1000:.0f} ms behind "
        f"schedule); {len(dom):,} timed, {unshown} shown only through a later change of "
        f"their task; {len(receipt):,} messages received, the slowest {max(receipt):.1f} ms "
        f"after its commit; slowest {max(dom):.1f} ms to the DOM, {max(frame):.1f} ms to the "
        f"next frame; page clock offset from Date.now() {skew:.1f} ms.",
        f"- JS heap: {first.used:,} bytes after {HEAP_FIRST:,} updates, {second.used:,} "
        f"after {updates:,} ({growth:+.1f}%), {third.used:,} after {updates_third:,} "
        f"({growth_on:+.1f}% on the second). In the snapshots taken after each: compiled "
        f"code {first.code:,}, {second.code:,} and {third.code:,} bytes; the page's objects, "
        f"closures and strings {first.data:,}, {second.data:,} and {third.data:,}.",
    ]
    return figures, details


async def run(context: Context) -> Report:
    if not (WEB_DIST / "index.html").exists():
        raise RuntimeError("the web app is not built: run `make web` first")
    async with stack(context, "web") as bench_stack:
        api = await bench_stack.start_api()
        base_url = f"http://127.0.0.1:{api.port}"
        dashboard = await scripts_of(base_url, "/", DASHBOARD_READY)
        graphiql = await scripts_of(base_url, "/graphql", GRAPHIQL_READY)
        live_figures, live_details = await live_page(bench_stack, api)
    dashboard_kib = sum(gzip_bytes(path) for path in dashboard) / KIB
    graphiql_kib = sum(gzip_bytes(path) for path in graphiql) / KIB
    graphiql_only = set(graphiql) - set(dashboard)
    leaked = [path for path in dashboard if path in graphiql_only]
    figures: list[Figure] = [
        at_most("dashboard first-load JavaScript, gzip", dashboard_kib, "KiB", TARGET_KIB),
        Figure("GraphiQL page JavaScript, gzip", graphiql_kib, "KiB"),
        at_most("GraphiQL-only files the dashboard loads", len(leaked), "", 0),
        *live_figures,
    ]
    details = [
        f"- Dashboard: {len(dashboard)} JavaScript files, {dashboard_kib:.1f} KiB gzip.",
        f"- GraphiQL page: {len(graphiql)} files, {graphiql_kib:.1f} KiB gzip, of which "
        f"{len(graphiql_only)} only it loads: "
        + ", ".join(f"{Path(path).name} {gzip_bytes(path) / KIB:.1f}" for path in graphiql)
        + " KiB.",
        *live_details,
    ]
    return Report(figures, details)


BENCHMARK = Benchmark(
    name="web",
    title="Web app: first load, commit to pixels, JS heap",
    method=METHOD,
    time_limit_seconds=420,
    run=run,
)
