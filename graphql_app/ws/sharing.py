"""One copy of a value that many open connections hold alike.

An idle WebSocket keeps what its client sent for as long as it is open: its handshake's
headers, its subscription's document and variables. Clients send the same few of each,
so holding one copy for all of them saves kilobytes per socket. The values come from
clients, so the table is bounded in entries and in the size of each value, and least
recently shared values leave it first; a value it does not keep is simply not shared.
(`sys.intern` is not used: on Python 3.12 before 3.12.5 an interned string is never
freed, so a client sending ever new documents would grow the process for good.)
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from cachetools import LRUCache

T = TypeVar("T", bound=Hashable)


class SharedValues(Generic[T]):
    """At most `max_items` values, each of at most `max_size` (as the caller measures it)."""

    __slots__ = ("_max_size", "_values")

    def __init__(self, max_items: int, max_size: int) -> None:
        self._max_size = max_size
        self._values: LRUCache[T, T] = LRUCache(maxsize=max_items)

    def __len__(self) -> int:
        return len(self._values)

    def share(self, value: T, size: int) -> T:
        """The copy kept for values equal to `value`; `value` itself if none is kept."""
        known = self._values.get(value)
        if known is not None:
            return known
        if size <= self._max_size:
            self._values[value] = value
        return value
