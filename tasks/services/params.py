"""What each kind of task takes besides its prompt: `params` checked against the kind's
model, and the number of input files it needs.

Only pydantic models here, no Pillow or pandas work, so the API checks a submission
without loading the libraries that do it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from persistence.models import TaskFile, TaskKind
from persistence.settings import Settings
from tasks.data_analysis_params import DataParams
from tasks.errors import InvalidInputError
from tasks.image_processing_params import ImageParams
from tasks.services.text import check_json_text

# The params model of each kind that takes params, and what its one input file is.
PARAMS_MODELS: dict[TaskKind, type[BaseModel]] = {
    TaskKind.IMAGE_PROCESSING: ImageParams,
    TaskKind.DATA_ANALYSIS: DataParams,
}
INPUT_FILE = {
    TaskKind.IMAGE_PROCESSING: "an image (PNG, JPEG, GIF, WEBP, BMP or TIFF)",
    TaskKind.DATA_ANALYSIS: "a CSV or JSON file",
}


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


def _check_file_count(kind: TaskKind, files: Sequence[TaskFile]) -> None:
    if kind not in INPUT_FILE:
        if files:
            raise InvalidInputError("files", f"{kind.value} tasks take no files.")
        return
    if len(files) != 1:
        raise InvalidInputError(
            "files", f"{kind.value} takes one input file, {INPUT_FILE[kind]}; got {len(files)}."
        )


def check_params(
    kind: TaskKind, params: Any, files: Sequence[TaskFile], settings: Settings
) -> dict[str, Any]:
    """The params to store, with every default filled in; InvalidInputError names the
    first field at fault."""
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise InvalidInputError("params", "params must be a JSON object.")
    _check_size(params, settings)
    check_json_text("params", params)
    _check_file_count(kind, files)
    model = PARAMS_MODELS.get(kind)
    if model is None:
        if params:
            raise InvalidInputError("params", f"{kind.value} tasks take no params.")
        return {}
    try:
        checked = model.model_validate(params)
    except ValidationError as error:
        raise _invalid(error) from None
    return checked.model_dump(mode="json", by_alias=True)
