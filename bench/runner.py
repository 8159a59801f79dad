"""`python -m bench [NAME ...]`: run benchmarks, print their figures, rewrite the docs."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import psutil

from bench import registry
from bench.core import Benchmark
from bench.environment import describe
from bench.process_limits import PARENT_PID_VARIABLE, raise_open_files_limit
from bench.report import print_details, print_table, result_data, write_docs
from bench.stack import Context, backing_services

DOCS_PATH = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--no-docs", action="store_true", help=f"do not rewrite {DOCS_PATH}")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the processes' logs even on success"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample each API process (and the pipeline's workers, pool included) with py-spy; "
        "the profiles stay in the log directory",
    )
    parser.add_argument(
        "--command",
        help="the command to record in the docs (default: this one); `make bench` sets it",
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


async def _run_one(benchmark: Benchmark, context: Context, run: dict[str, Any]) -> dict[str, Any]:
    print(f"bench: {benchmark.name}: {benchmark.title} ...", flush=True)
    started = time.monotonic()
    error = None
    report = None
    try:
        report = await asyncio.wait_for(benchmark.run(context), benchmark.time_limit_seconds)
    except TimeoutError:
        error = f"stopped after its time limit of {benchmark.time_limit_seconds:g} s"
    except Exception:
        error = traceback.format_exc()
    seconds = time.monotonic() - started
    print(
        f"bench: {benchmark.name}: {'failed' if error else 'done'} in {seconds:.0f} s", flush=True
    )
    if error:
        print(error, file=sys.stderr)
    run = {**run, "seconds": seconds}
    if report is None:
        return result_data([], [], error, run)
    return result_data(report.figures, report.details, error, run)


async def _run_all(
    benchmarks: list[Benchmark], context: Context, command: str
) -> dict[str, dict[str, Any]]:
    run = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "environment": await describe(context.backing),
    }
    return {benchmark.name: await _run_one(benchmark, context, run) for benchmark in benchmarks}


def leftovers(workdir: Path) -> list[psutil.Process]:
    """Processes this run started that are still there: children, anything carrying the
    run's marker in its environment, anything whose command line names its directory."""
    mine = str(os.getpid())
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid == os.getpid():
            continue
        try:
            marked = process.environ().get(PARENT_PID_VARIABLE) == mine
            named = any(str(workdir) in part for part in process.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if marked or named:
            found.append(process)
    return found


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.list:
        for benchmark in registry.BENCHMARKS:
            print(f"{benchmark.name:12} {benchmark.title}")
        return 0
    try:
        benchmarks = registry.select(args.names)
    except ValueError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    command = args.command or shlex.join(["python", "-m", "bench", *(argv or sys.argv[1:])])
    raise_open_files_limit()
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="aitasks-bench-"))
    log_dir = workdir / "logs"
    log_dir.mkdir()
    results: dict[str, dict[str, Any]] = {}
    try:
        with backing_services(workdir) as backing:
            context = Context(backing, log_dir, profile=args.profile)
            results = asyncio.run(_run_all(benchmarks, context, command))
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        left = leftovers(workdir)
        for process in left:
            print(f"bench: killing a leftover process: {process.pid} {process.info['cmdline']}")
            process.kill()
        failed = any(result["error"] for result in results.values()) or not results
        if failed or args.profile or args.keep_logs:
            print(f"bench: logs kept in {log_dir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print_details(results)
    print_table(results)
    if not args.no_docs:
        write_docs(DOCS_PATH, results, registry.BENCHMARKS)
        print(f"\nbench: wrote {DOCS_PATH}")
    return 1 if failed else 0
