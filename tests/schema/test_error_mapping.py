"""An unexpected failure reaches the client as a fixed message with a stable code, never
its own text; an expected one keeps its message and code."""

from __future__ import annotations

import pytest
import strawberry

from schema.error_mapping import UNEXPECTED_CODE, UNEXPECTED_MESSAGE, mask_errors
from tasks.errors import TaskNotFoundError

pytestmark = pytest.mark.anyio


@strawberry.type
class Query:
    @strawberry.field
    def broken(self) -> str:
        raise RuntimeError("password=hunter2 at /srv/secret.py line 3")

    @strawberry.field
    def missing(self) -> str:
        raise TaskNotFoundError("abc")


SCHEMA = strawberry.Schema(Query, extensions=[mask_errors()])


async def test_an_unexpected_error_is_masked_with_a_stable_code() -> None:
    result = await SCHEMA.execute("{ broken }")

    assert result.errors is not None
    [error] = result.errors
    assert error.message == UNEXPECTED_MESSAGE
    assert error.extensions == {"code": UNEXPECTED_CODE}
    assert "hunter2" not in str(error.formatted)


async def test_an_expected_error_keeps_its_message_and_code() -> None:
    result = await SCHEMA.execute("{ missing }")

    assert result.errors is not None
    assert result.errors[0].message == "No task with id 'abc' exists."
    assert result.errors[0].formatted["extensions"] == {"code": "NOT_FOUND"}
