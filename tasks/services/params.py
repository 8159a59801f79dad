"""What each kind of task takes besides its prompt: `params` checked against the kind's
model, and the number of input files it needs (both declared in tasks/kinds).

Only pydantic models here, no Pillow or pandas work, so the API checks a submission
without loading the libraries that do it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import ValidationError

from persistence.models import TaskFile
from persistence.settings import Settings
from tasks.errors import InvalidInputError
from tasks.kinds import KINDS
from tasks.services.text import check_json_text


def _location(parts: Sequence[int | str]) -> str:
    path = "params"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _invalid(error: ValidationError) -> InvalidInputError:
    first = error.errors(include_url=False)[0]
    field = _location(first["loc"])
    return InvalidInputError(field, f"{field}: {first['msg']}.")


def _check_size(params: dict[str, Any], settings: Settings) -> None:
    try:
        size = len(orjson.dumps(params))
    except TypeError as error:
        # An integer past 64 bits, nesting too deep, a file part mapped into params.
        raise InvalidInputError("params", f"params cannot be read as JSON: {error}.") from None
    if size > settings.params_max_bytes:
        raise InvalidInputError(
            "params",
            f"params is {size:,} bytes of JSON; the limit is {settings.params_max_bytes:,} "
            "(AITASKS_PARAMS_MAX_BYTES).",
        )


def _check_file_count(kind: str, files: Sequence[TaskFile]) -> None:
    input_file = KINDS[kind].input_file
    if input_file is None:
        if files:
            raise InvalidInputError("files", f"{kind} tasks take no files.")
        return
    if len(files) != 1:
        raise InvalidInputError(
            "files",
            f"{kind} takes one input file, {input_file.described()}; got {len(files)}.",
        )


def check_params(
    kind: str, params: Any, files: Sequence[TaskFile], settings: Settings
) -> dict[str, Any]:
    """The params to store, with every default filled in; InvalidInputError names the
    first field at fault."""
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise InvalidInputError("params", "params must be a JSON object.")
    _check_size(params, settings)
    check_json_text("params", params)
    _check_file_count(kind, files)
    model = KINDS[kind].params
    if model is None:
        if params:
            raise InvalidInputError("params", f"{kind} tasks take no params.")
        return {}
    try:
        checked = model.model_validate(params)
    except ValidationError as error:
        raise _invalid(error) from None
    return checked.model_dump(mode="json", by_alias=True)
