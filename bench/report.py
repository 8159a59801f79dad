"""The table printed after a run, and docs/benchmarks.md.

The document is rebuilt from data each time: the results of every benchmark ever run are
kept as JSON in a comment at its end, so running a subset replaces only those
benchmarks' figures and keeps the others, each with the date and command that measured it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.core import Benchmark, Figure

DATA_PATTERN = re.compile(r"<!-- bench-results\n(.*)\n-->", re.DOTALL)
HOLDS = {True: "yes", False: "**no**", None: ""}


def _figures(result: dict[str, Any]) -> list[Figure]:
    return [Figure(**figure) for figure in result.get("figures", [])]


def table(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = [["benchmark", "measure", "measured", "target", "holds", "spread"]]
    for name, result in results.items():
        if result.get("error"):
            rows.append([name, "FAILED", result["error"].splitlines()[0][:80], "", "", ""])
        for figure in _figures(result):
            cells = [name, figure.measure, figure.shown(), figure.target, HOLDS[figure.holds]]
            rows.append([*cells, figure.spread])
    return rows


def print_table(results: dict[str, dict[str, Any]]) -> None:
    rows = table(results)
    rows = [[cell.replace("**", "") for cell in row] for row in rows]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for number, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if number == 0:
            print("  ".join("-" * width for width in widths))


def print_details(results: dict[str, dict[str, Any]]) -> None:
    for name, result in results.items():
        if result.get("details"):
            print(f"{name}:")
            print("\n".join(result["details"]))


def load_results(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    found = DATA_PATTERN.search(path.read_text())
    return json.loads(found.group(1)) if found else {}


def result_data(
    figures: list[Figure], details: list[str], error: str | None, run: dict[str, Any]
) -> dict[str, Any]:
    return {
        "figures": [asdict(figure) for figure in figures],
        "details": details,
        "error": error,
        "run": run,
    }


def _markdown_table(rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
    lines += [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows[1:]
    ]
    return lines


def _environment(run: dict[str, Any]) -> list[str]:
    environment = run["environment"]
    rows = [["", ""]]
    rows += [[key, value] for key, value in environment["machine"].items()]
    rows += [[key, value] for key, value in environment["software"].items()]
    return _markdown_table(rows)


def _section(benchmark: Benchmark, result: dict[str, Any], latest: dict[str, Any]) -> list[str]:
    run = result["run"]
    lines = [f"## {benchmark.title} (`{benchmark.name}`)", "", benchmark.method, ""]
    if result.get("error"):
        lines += ["**The last run failed:**", "", "```", result["error"], "```", ""]
    lines += result.get("details", [])
    lines += [f"Measured {run['date']} with `{run['command']}` in {run['seconds']:.0f} s."]
    if run["environment"] != latest["environment"]:
        lines += ["That run was on another machine or other versions:", ""]
        lines += _environment(run)
    return [*lines, ""]


def render(results: dict[str, dict[str, Any]], benchmarks: list[Benchmark]) -> str:
    latest = max((result["run"] for result in results.values()), key=lambda run: run["date"])
    known = {benchmark.name: benchmark for benchmark in benchmarks}
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m bench`, which `make bench` runs: do not edit by hand, run it "
        "again. `python -m bench NAME ...` measures some benchmarks again and keeps the "
        "others' figures. Everything runs on this one machine: a real PostgreSQL and Redis "
        "(embedded ones, as `make run` starts, unless AITASKS_DATABASE_URL / "
        "AITASKS_REDIS_URL are set), the real API process (`aitasks api`), and load "
        "generators in processes of their own that talk to it on 127.0.0.1.",
        "",
        "The machine is small, shared and noisy: every figure is a median over repeats or "
        "over many samples, comparisons are measured side by side in one run, and nothing "
        "here is asserted. Read them as sizes, not guarantees.",
        "",
        "`python -m bench --profile NAME` also samples each API process with py-spy (if "
        "installed), and the pipeline's workers with their pool processes, and keeps the "
        "profiles with the logs; `python -m bench.profiles FILE` shows where the time went. "
        "`--keep-logs` keeps every process's log.",
        "",
        f"Last run: {latest['date']}, `{latest['command']}`.",
        "",
        *_environment(latest),
        "",
        "## Summary",
        "",
        *_markdown_table(table(results)),
        "",
    ]
    for name, result in results.items():
        if name in known:
            lines += _section(known[name], result, latest)
    data = json.dumps(results, indent=1, ensure_ascii=False)
    return "\n".join([*lines, "<!-- bench-results", data, "-->", ""])


def write_docs(path: Path, fresh: dict[str, dict[str, Any]], benchmarks: list[Benchmark]) -> None:
    """Merge `fresh` results into those in `path` and rewrite it."""
    kept = load_results(path)
    order = [benchmark.name for benchmark in benchmarks]
    merged = {**kept, **fresh}
    results = {name: merged[name] for name in order if name in merged}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results, benchmarks))
