"""The browser app's first load, in Chromium: how much JavaScript the dashboard costs, and
that GraphiQL's code stays on its own page."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import async_playwright

from bench.core import Benchmark, Figure, Report, at_most
from bench.stack import Context, stack
from graphql_app.web import WEB_DIST

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TARGET_KIB = 200.0
KIB = 1024
LOAD_TIMEOUT_MS = 60_000

METHOD = f"""\
A fresh API process serves the built app (`make web`); Chromium ({CHROMIUM}, through
Playwright) opens `/` and then `/graphql` in fresh contexts and waits for the network to go
quiet. Every JavaScript file each page fetched is counted at the size of the gzip copy the
build made of it (what a browser that accepts gzip is sent; Brotli is smaller still).
"Dashboard loads GraphiQL" counts GraphiQL's own chunks (its entry, Monaco) among the
dashboard's requests: it must be 0. Target: the dashboard's first-load JavaScript, gzip,
≤ {TARGET_KIB:g} KiB."""


def gzip_bytes(path: str) -> int:
    """The size of a built file's gzip copy (its own size when too small to have one)."""
    file = WEB_DIST / path.lstrip("/")
    compressed = Path(f"{file}.gz")
    return (compressed if compressed.exists() else file).stat().st_size


async def scripts_of(base_url: str, path: str) -> list[str]:
    """The paths of the JavaScript files a first visit to `path` fetched."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context()
        fetched: list[str] = []
        context.on("request", lambda request: fetched.append(request.url))
        page = await context.new_page()
        await page.goto(f"{base_url}{path}", wait_until="networkidle", timeout=LOAD_TIMEOUT_MS)
        await browser.close()
    return [urlsplit(url).path for url in fetched if urlsplit(url).path.endswith(".js")]


async def run(context: Context) -> Report:
    if not (WEB_DIST / "index.html").exists():
        raise RuntimeError("the web app is not built: run `make web` first")
    async with stack(context, "web") as bench_stack:
        api = await bench_stack.start_api()
        base_url = f"http://127.0.0.1:{api.port}"
        dashboard = await scripts_of(base_url, "/")
        graphiql = await scripts_of(base_url, "/graphql")
    dashboard_kib = sum(gzip_bytes(path) for path in dashboard) / KIB
    graphiql_kib = sum(gzip_bytes(path) for path in graphiql) / KIB
    graphiql_only = set(graphiql) - set(dashboard)
    leaked = [path for path in dashboard if path in graphiql_only]
    figures: list[Figure] = [
        at_most("dashboard first-load JavaScript, gzip", dashboard_kib, "KiB", TARGET_KIB),
        Figure("GraphiQL page JavaScript, gzip", graphiql_kib, "KiB"),
        at_most("GraphiQL-only files the dashboard loads", len(leaked), "", 0),
    ]
    details = [
        f"- Dashboard: {len(dashboard)} JavaScript files, {dashboard_kib:.1f} KiB gzip.",
        f"- GraphiQL page: {len(graphiql)} files, {graphiql_kib:.1f} KiB gzip, of which "
        f"{len(graphiql_only)} only it loads.",
        "- Not measured yet: commit-to-pixels latency with 20 tasks streaming, and the JS "
        "heap after 5,000 updates against 500.",
    ]
    return Report(figures, details)


BENCHMARK = Benchmark(
    name="web",
    title="Web app: first load",
    method=METHOD,
    time_limit_seconds=300,
    run=run,
)
