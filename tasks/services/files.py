"""Input files as a caller sends them, checked and turned into what a task stores."""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass

from persistence.models import CONTENT_TYPE_MAX_CHARS, FILE_NAME_MAX_CHARS, TaskFile
from persistence.settings import Settings
from tasks.errors import InvalidInputError
from tasks.services.text import check_text

# What a file is served as when neither the caller nor its name says.
FALLBACK_CONTENT_TYPE = "application/octet-stream"
# type/subtype, optionally with parameters (`text/csv; charset=utf-8`).
CONTENT_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+( ?;[ -~]*)?$", re.ASCII)
# Names end up in download URLs and Content-Disposition headers: no paths, no controls.
FORBIDDEN_NAME_CHARS = re.compile(r"[/\\\x00-\x1f\x7f]")


@dataclass(frozen=True)
class NewFile:
    """A file as sent: inline (`base64`) or uploaded (`data`, read up to the limit plus
    one byte, so that a file over the limit is known to be one without reading it all)."""

    name: str
    content_type: str | None = None
    base64: str | None = None
    data: bytes | None = None
    # `upload` held something other than a file part of a multipart request.
    not_a_file: bool = False


def _field(index: int, name: str = "") -> str:
    return f"files[{index}]{'.' + name if name else ''}"


def _check_name(index: int, name: str, seen: set[str]) -> None:
    field = _field(index, "name")
    check_text(field, name)
    if not name.strip() or len(name) > FILE_NAME_MAX_CHARS:
        raise InvalidInputError(field, f"A file name has 1 to {FILE_NAME_MAX_CHARS} characters.")
    if FORBIDDEN_NAME_CHARS.search(name) or name in {".", ".."}:
        raise InvalidInputError(
            field, f"The file name {name!r} has a slash or a control character; give a plain name."
        )
    if name in seen:
        raise InvalidInputError(field, f"Two files are named {name!r}; give each its own name.")
    seen.add(name)


def _content_type(index: int, file: NewFile) -> str:
    if file.content_type is None:
        guessed, _ = mimetypes.guess_type(file.name)
        return guessed or FALLBACK_CONTENT_TYPE
    check_text(_field(index, "contentType"), file.content_type)
    given = file.content_type.strip()
    if len(given) > CONTENT_TYPE_MAX_CHARS or not CONTENT_TYPE.match(given):
        raise InvalidInputError(
            _field(index, "contentType"),
            f"{file.content_type!r} is not a content type such as image/png or text/csv.",
        )
    return given


def _inline_too_large(index: int, limit: int) -> InvalidInputError:
    return InvalidInputError(
        _field(index, "base64"),
        f"The inline file is over {limit:,} bytes (AITASKS_INLINE_FILE_MAX_BYTES); "
        "send larger files as a multipart upload.",
    )


def _decoded(index: int, text: str, limit: int) -> bytes:
    # Four base64 characters carry three bytes: refuse an oversize file before decoding it.
    if len(text) > (limit + 2) // 3 * 4 + 4:
        raise _inline_too_large(index, limit)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(_field(index, "base64"), "This is not valid base64.") from None
    if len(data) > limit:
        raise _inline_too_large(index, limit)
    return data


def _data(index: int, file: NewFile, settings: Settings) -> bytes:
    if file.not_a_file:
        raise InvalidInputError(
            _field(index, "upload"),
            "`upload` must be a file part of a multipart request (the GraphQL multipart "
            "request spec); for inline bytes use `base64`.",
        )
    if (file.base64 is None) == (file.data is None):
        raise InvalidInputError(
            _field(index), "Give each file either `base64` or `upload`, not both or neither."
        )
    if file.base64 is not None:
        data = _decoded(index, file.base64, settings.inline_file_max_bytes)
    else:
        assert file.data is not None
        data = file.data
        if len(data) > settings.file_max_bytes:
            raise InvalidInputError(
                _field(index),
                f"The file {file.name!r} is over the limit of {settings.file_max_bytes:,} "
                "bytes (AITASKS_FILE_MAX_BYTES).",
            )
    if not data:
        raise InvalidInputError(_field(index), f"The file {file.name!r} is empty.")
    return data


def check_files(files: Sequence[NewFile], settings: Settings) -> tuple[TaskFile, ...]:
    """The files to store with a task; InvalidInputError names the first one at fault."""
    if len(files) > settings.files_max_per_task:
        raise InvalidInputError(
            "files",
            f"A task takes at most {settings.files_max_per_task} files "
            "(AITASKS_FILES_MAX_PER_TASK).",
        )
    seen: set[str] = set()
    checked = []
    for index, file in enumerate(files):
        _check_name(index, file.name, seen)
        content_type = _content_type(index, file)
        checked.append(TaskFile(file.name, content_type, _data(index, file, settings)))
    return tuple(checked)
