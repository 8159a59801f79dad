"""The table of values shared between connections stays within its bounds."""

from __future__ import annotations

from graphql_app.ws.sharing import SharedValues


def _text(value: str) -> str:
    # A fresh object each time, as a client's message decoded anew would be.
    return "".join(list(value))


def test_an_equal_value_comes_back_as_the_first_copy() -> None:
    shared: SharedValues[str] = SharedValues(max_items=4, max_size=100)
    first = shared.share(_text("subscription { taskStatus }"), 27)
    again = _text("subscription { taskStatus }")
    assert again is not first
    assert shared.share(again, len(again)) is first


def test_a_value_over_the_size_bound_is_not_kept() -> None:
    shared: SharedValues[str] = SharedValues(max_items=4, max_size=10)
    long = _text("x" * 11)
    assert shared.share(long, len(long)) is long
    assert len(shared) == 0
    assert shared.share(_text("x" * 11), 11) is not long


def test_the_least_recently_shared_value_leaves_first_when_full() -> None:
    shared: SharedValues[str] = SharedValues(max_items=2, max_size=10)
    a, b, c = _text("query A"), _text("query B"), _text("query C")
    shared.share(a, 7)
    shared.share(b, 7)
    shared.share(_text("query A"), 7)  # A is now the most recent
    shared.share(c, 7)  # so B leaves
    assert len(shared) == 2
    assert shared.share(_text("query A"), 7) is a
    assert shared.share(_text("query C"), 7) is c
    assert shared.share(_text("query B"), 7) is not b


def test_many_distinct_values_never_grow_the_table_past_its_bound() -> None:
    shared: SharedValues[str] = SharedValues(max_items=50, max_size=100)
    for number in range(1000):
        shared.share(f"query Q{number} {{ task }}", 20)
    assert len(shared) == 50
