"""Each kind checks its params and input files at submission: a ValidationError naming
the field, and nothing stored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.files import image_bytes, inline
from tests.fixtures.graphql import create_task
from tests.fixtures.stack import Stack
from tests.fixtures.tasks import count_tasks

PHOTO = [inline("photo.png", image_bytes())]
SALES = [inline("sales.csv", b"region,units\nnorth,3\n")]


@pytest.mark.parametrize(
    ("task_input", "field", "message"),
    [
        (
            {"kind": "IMAGE_PROCESSING", "params": {"operations": [{"op": "grayscale"}]}},
            "files",
            "takes one input file",
        ),
        (
            {"kind": "DATA_ANALYSIS", "files": [*SALES, inline("b.csv", b"a\n1\n")]},
            "files",
            "got 2",
        ),
        ({"prompt": "hi", "files": PHOTO}, "files", "TEXT_GENERATION tasks take no files"),
        ({"prompt": "hi", "params": {"temperature": 2}}, "params", "take no params"),
        ({"kind": "IMAGE_PROCESSING", "files": PHOTO, "params": [1]}, "params", "JSON object"),
        ({"kind": "IMAGE_PROCESSING", "files": PHOTO}, "params.operations", "Field required"),
        (
            {
                "kind": "IMAGE_PROCESSING",
                "files": PHOTO,
                "params": {"operations": [{"op": "melt"}]},
            },
            "params.operations[0]",
            "'melt'",
        ),
        (
            {
                "kind": "IMAGE_PROCESSING",
                "files": PHOTO,
                "params": {"operations": [{"op": "resize", "width": 0, "height": 5}]},
            },
            "params.operations[0].resize.width",
            "greater than or equal to 1",
        ),
        (
            {"kind": "DATA_ANALYSIS", "files": SALES, "params": {"encoding": "klingon"}},
            "params.encoding",
            "not a known text encoding",
        ),
        (
            {
                "kind": "DATA_ANALYSIS",
                "files": SALES,
                "params": {"groupBy": [{"by": ["region"], "aggregations": {"units": ["mode"]}}]},
            },
            "params.groupBy[0].aggregations.units[0]",
            "'sum'",
        ),
        (
            {"kind": "DATA_ANALYSIS", "files": SALES, "params": {"topValues": 10**30}},
            "params",
            "cannot be read as JSON",
        ),
        (
            {
                "kind": "DATA_ANALYSIS",
                "files": SALES,
                "params": {"groupBy": [{"by": ["re\x00gion"], "aggregations": {"units": ["sum"]}}]},
            },
            "params",
            "NUL character",
        ),
        (
            {"kind": "DATA_ANALYSIS", "files": SALES, "params": {"note": "x" * 20_000}},
            "params",
            "(AITASKS_PARAMS_MAX_BYTES)",
        ),
    ],
)
def test_bad_params_or_files_for_the_kind_are_a_validation_error(
    stack: Stack, task_input: dict[str, Any], field: str, message: str
) -> None:
    before = count_tasks(stack.database_url)

    result = create_task(stack, **task_input)

    assert result["__typename"] == "ValidationError", result
    assert result["field"] == field, result
    assert message in result["message"], result
    assert count_tasks(stack.database_url) == before


def test_params_are_stored_with_every_default_filled_in(stack: Stack) -> None:
    task = create_task(stack, kind="DATA_ANALYSIS", files=SALES)

    assert task["params"] == {
        "format": None,
        "encoding": "utf-8",
        "delimiter": None,
        "groupBy": [],
        "topValues": 5,
    }
