"""The short fault suite (one case per dependency), run by `make test`; `make faults`
runs every case (tests/faults/__main__.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.cases import SHORT, SHORT_TASKS_BEFORE, run
from tests.faults.harness import RECOVERY_SECONDS, Bench, bench


@pytest.fixture(scope="module")
def servers() -> Iterator[Bench]:
    with bench() as made:
        yield made


@pytest.mark.timeout(240)
@pytest.mark.parametrize("case", SHORT)
def test_a_fault_loses_no_task_finishes_none_twice_and_recovers_in_seconds(
    servers: Bench, case: str
) -> None:
    outcome = run(servers, case, SHORT_TASKS_BEFORE)
    print(outcome)

    assert outcome.lost == 0, outcome
    assert outcome.completed_twice == 0, outcome
    assert outcome.stuck == 0, outcome
    assert outcome.bare == 0, outcome
    assert outcome.subscriber_errors == 0, outcome
    assert outcome.recovery_seconds is not None, outcome
    assert outcome.recovery_seconds <= RECOVERY_SECONDS + outcome.backlog_seconds, outcome
