"""Matching what the writer committed with what the clients received.

The writer reports each change as [task, sequence, committed, published]; a subscriber
agent reports each update as [subscription, sequence, received]. Both times come from
`time.time()` on the same machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.core import median, percentile

MILLISECONDS = 1000.0

Change = Sequence[float]
Receipt = Sequence[float]


@dataclass(frozen=True)
class Deliveries:
    """Each expected delivery's delay from commit to receipt, in milliseconds."""

    delays_ms: list[float]
    expected: int
    # Updates that repeated or went back on a sequence the subscriber already had.
    out_of_order: int

    @property
    def lost(self) -> int:
        return self.expected - len(self.delays_ms)

    def percentile(self, percent: float) -> float | None:
        return percentile(self.delays_ms, percent) if self.delays_ms else None


def match(
    changes: Sequence[Change],
    receipts: Sequence[Receipt],
    task_of: Callable[[int], int],
    subscribers_per_task: int,
) -> Deliveries:
    committed = {(int(task), int(sequence)): at for task, sequence, at, _ in changes}
    delays = []
    last_seen: dict[int, int] = {}
    out_of_order = 0
    for subscription, sequence, received in sorted(receipts, key=lambda receipt: receipt[2]):
        subscription, sequence = int(subscription), int(sequence)
        if sequence <= last_seen.get(subscription, 0):
            out_of_order += 1
            continue
        last_seen[subscription] = sequence
        at = committed.get((task_of(subscription), sequence))
        if at is not None:
            delays.append((received - at) * MILLISECONDS)
    return Deliveries(delays, len(changes) * subscribers_per_task, out_of_order)


def publish_ms(changes: Sequence[Change]) -> float | None:
    """The median time from commit until Redis acknowledged the PUBLISH."""
    times = [(published - committed) * MILLISECONDS for _, _, committed, published in changes]
    return median(times) if times else None
