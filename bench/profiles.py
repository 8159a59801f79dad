"""`python -m bench.profiles FILE [N]`: where a py-spy profile (`--profile`) spent its time.

Reads py-spy's raw (collapsed) stacks and prints the N functions with the most samples,
inclusive (anywhere on the stack) and exclusive (on top of it), as shares of all samples,
then the samples by library (`by_library`).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

DEFAULT_COUNT = 25
REPOSITORY = Path(__file__).resolve().parent.parent
SITE_PACKAGES = "site-packages/"
# Distributions whose import name says little, and packages that belong together.
LIBRARY_NAMES = {
    "graphql": "graphql-core",
    "strawberry": "strawberry",
    "redis": "redis-py",
    "h11": "uvicorn",
    "httptools": "uvicorn",
    "anyio": "starlette",
}
# The time a standard-library frame on top of the stack takes is charged to the library
# that called it (the json of a response to whoever encodes it), except these, shown
# apart: what the event loop itself does, and logging.
STANDARD_APART = {"asyncio": "asyncio (event loop)", "logging": "logging"}


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


def library_of(frame: str) -> str | None:
    """The library a py-spy frame (`function (path:line)`, with --full-filenames) is
    in: a package in site-packages, `aitasks` for this repository's code, `bench` for the
    benchmarks', the standard library module when listed in STANDARD_APART, else None."""
    _, _, place = frame.partition(" (")
    path = place.rsplit(":", 1)[0]
    if SITE_PACKAGES in path:
        package = path.split(SITE_PACKAGES, 1)[1].split("/", 1)[0].removesuffix(".py")
        package = package.split(".", 1)[0]
        return LIBRARY_NAMES.get(package, package)
    if path.startswith(str(REPOSITORY)):
        relative = path.removeprefix(str(REPOSITORY)).lstrip("/")
        return "bench" if relative.startswith("bench/") else "aitasks (our code)"
    for name, label in STANDARD_APART.items():
        if f"/{name}/" in path:
            return label
    return None


def by_library(path: Path) -> tuple[int, Counter[str]]:
    """Samples by the library of the frame on top of the stack; a standard-library frame
    counts for the nearest caller in a library (`library_of`)."""
    total = 0
    libraries: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        found = (library_of(frame) for frame in reversed(stack.split(";")))
        libraries[next((library for library in found if library), "other")] += count
    return total, libraries


def main() -> int:
    path = Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_COUNT
    total, inclusive, exclusive = summarize(path)
    for title, counter in (("inclusive", inclusive), ("exclusive", exclusive)):
        print(f"{title} ({total} samples)")
        for frame, samples in counter.most_common(count):
            print(f"  {100 * samples / total:5.1f}%  {frame}")
    total, libraries = by_library(path)
    print(f"by library ({total} samples)")
    for library, samples in libraries.most_common():
        print(f"  {100 * samples / total:5.1f}%  {library}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
