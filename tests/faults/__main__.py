"""`make faults`: every fault case, one after another, on the suite's own servers; the
table goes to docs/reliability.md. `python -m tests.faults "case name" ...` runs some."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from tests.faults.cases import CASES, run
from tests.faults.harness import RECOVERY_SECONDS, Outcome, bench

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
BEGIN, END = "<!-- faults:begin -->", "<!-- faults:end -->"


def _seconds(outcome: Outcome) -> str:
    if outcome.recovery_seconds is None:
        return f"not within {RECOVERY_SECONDS + outcome.backlog_seconds:.0f} s"
    return f"{outcome.recovery_seconds:.1f} s (backlog {outcome.backlog_seconds:.1f} s)"


def table(outcomes: list[Outcome], command: str, load: str = "") -> str:
    lines = [
        f"Produced by `{command}`{load}.",
        "",
        "| fault | tasks | lost | completed twice | stuck | all ended, after the fault"
        " | createTask during the fault | subscribers | holds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for outcome in outcomes:
        lines.append(
            f"| {outcome.case} | {outcome.created} | {outcome.lost} | "
            f"{outcome.completed_twice} | {outcome.stuck} | {_seconds(outcome)} | "
            f"{outcome.answers} | {outcome.subscribers or '-'} | "
            f"{'yes' if outcome.passed else '**no**'} |"
        )
    return "\n".join(lines)


def _load(loads: list[float]) -> str:
    """The machine's 1-minute load average at the start and after each case: figures
    from a shared, busy machine are read differently."""
    cores = os.cpu_count() or 1
    return (
        f", on {cores} cores with a 1-minute load average of {min(loads):.1f} to "
        f"{max(loads):.1f} (median {statistics.median(loads):.1f}) at the start and after "
        "each case"
    )


def write(doc: Path, text: str) -> None:
    current = doc.read_text()
    head, _, rest = current.partition(BEGIN)
    _, _, tail = rest.partition(END)
    doc.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def update_rows(doc: Path, outcomes: list[Outcome], command: str) -> None:
    """Replace the rows of the cases re-run, and say how they were."""
    _, _, rest = doc.read_text().partition(BEGIN)
    current, _, _ = rest.partition(END)
    fresh = table(outcomes, command).splitlines()[4:]
    lines = current.strip().splitlines()
    for row, outcome in zip(fresh, outcomes, strict=True):
        lines = [row if line.startswith(f"| {outcome.case} |") else line for line in lines]
    names = ", ".join(f'"{outcome.case}"' for outcome in outcomes)
    lines.append("")
    lines.append(f"Re-run on their own: {names}, by `{command}`.")
    write(doc, "\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    parser.add_argument("--command", default="make faults", help="named in the document")
    args = parser.parse_args()
    names = args.cases or list(CASES)
    outcomes = []
    loads = [os.getloadavg()[0]]
    with bench() as servers:
        for name in names:
            outcome = run(servers, name)
            print(outcome, flush=True)
            outcomes.append(outcome)
            loads.append(os.getloadavg()[0])
    text = table(outcomes, args.command, _load(loads))
    print(text)
    if args.cases:
        update_rows(DOC, outcomes, args.command)
    else:
        write(DOC, text)
    return 0 if all(outcome.passed for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
