"""Input files are checked before anything is stored: each problem is a ValidationError
naming the file."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from persistence.settings import Settings
from tests.fixtures.files import image_bytes, inline
from tests.fixtures.graphql import create_task
from tests.fixtures.stack import Stack
from tests.fixtures.tasks import count_tasks

INLINE_LIMIT = Settings.model_fields["inline_file_max_bytes"].default
FILES_LIMIT = Settings.model_fields["files_max_per_task"].default
GRAYSCALE = {"operations": [{"op": "grayscale"}]}


@pytest.mark.parametrize(
    ("files", "field", "message"),
    [
        ([inline("empty.png", b"")], "files[0]", "The file 'empty.png' is empty"),
        ([{"name": "a.png", "base64": "not base64!"}], "files[0].base64", "not valid base64"),
        (
            [inline("big.png", b"x" * (INLINE_LIMIT + 1))],
            "files[0].base64",
            f"over {INLINE_LIMIT:,} bytes (AITASKS_INLINE_FILE_MAX_BYTES)",
        ),
        ([inline("../etc/passwd", b"x")], "files[0].name", "slash"),
        ([inline("", b"x")], "files[0].name", "1 to 200 characters"),
        ([inline("a.png", b"x"), inline("a.png", b"y")], "files[1].name", "Two files"),
        ([{"name": "a.png"}], "files[0]", "either `base64` or `upload`"),
        ([inline("a.png", b"x", "not a type")], "files[0].contentType", "not a content type"),
        ([inline("a.png", b"x", "image/png; x=\r\ny")], "files[0].contentType", "not a content"),
        ([inline("a.png", b"x", "image/png; \x00")], "files[0].contentType", "NUL character"),
        ([inline("a\ud800.png", b"x")], "files[0].name", "not valid Unicode text"),
        ([{"name": "a.png", "upload": "not a file"}], "files[0].upload", "file part"),
        (
            [inline(f"{index}.png", b"x") for index in range(FILES_LIMIT + 1)],
            "files",
            f"at most {FILES_LIMIT} files",
        ),
    ],
)
def test_a_bad_file_is_a_validation_error_and_stores_nothing(
    stack: Stack, files: list[dict[str, Any]], field: str, message: str
) -> None:
    before = count_tasks(stack.database_url)

    result = create_task(stack, kind="IMAGE_PROCESSING", params=GRAYSCALE, files=files)

    assert result["__typename"] == "ValidationError", result
    assert (result["field"], message in result["message"]) == (field, True), result
    assert count_tasks(stack.database_url) == before


def test_an_inline_file_is_stored_with_its_digest_and_guessed_type(stack: Stack) -> None:
    data = image_bytes()

    task = create_task(
        stack, kind="IMAGE_PROCESSING", params=GRAYSCALE, files=[inline("photo.png", data)]
    )

    [described] = task["inputs"]
    assert described["contentType"] == "image/png"
    assert described["size"] == len(data)
    assert described["sha256"] == hashlib.sha256(data).hexdigest()
