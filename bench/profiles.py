"""`python -m bench.profiles FILE [N]`: where a py-spy profile (`--profile`) spent its time.

Reads py-spy's raw (collapsed) stacks and prints the N functions with the most samples,
inclusive (anywhere on the stack) and exclusive (on top of it), as shares of all samples.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

DEFAULT_COUNT = 25


def _frame_name(frame: str) -> str:
    """`function (path/file.py:line)` without the line, so a function counts once."""
    name, _, place = frame.partition(" (")
    return f"{name} ({place.rsplit(':', 1)[0]})" if place else name


def summarize(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    total = 0
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";")]
        total += count
        exclusive[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return total, inclusive, exclusive


def main() -> int:
    path = Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_COUNT
    total, inclusive, exclusive = summarize(path)
    for title, counter in (("inclusive", inclusive), ("exclusive", exclusive)):
        print(f"{title} ({total} samples)")
        for frame, samples in counter.most_common(count):
            print(f"  {100 * samples / total:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
