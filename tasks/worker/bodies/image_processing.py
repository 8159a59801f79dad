"""IMAGE_PROCESSING: the operations applied in order to the input image, the result
stored as an artifact, and, if asked, a caption from a vision-capable model."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from persistence.models import FILE_NAME_MAX_CHARS, TaskFile
from tasks.image_processing_params import ImageParams
from tasks.providers.base import Chunk, ImageData
from tasks.worker.bodies.image_processing_steps import (
    EncodedImage,
    ImageInputError,
    ImageLimits,
    apply_operation,
    describe_operation,
    encode_image,
    model_preview,
    open_image,
    output_format_for,
)
from tasks.worker.running import Outcome, RunningTask, in_thread

# Shares of the progress bar: decoding, the operations, encoding, the caption.
DECODED_AT = 0.1
OPERATIONS_END_AT = 0.8
ENCODED_AT = 0.85
DEFAULT_CAPTION_REQUEST = "Describe this image in one or two sentences."


def _limits(running: RunningTask) -> ImageLimits:
    settings = running.runtime.settings
    return ImageLimits(
        max_pixels=settings.image_max_pixels, max_output_bytes=settings.artifact_max_bytes
    )


async def _caption(running: RunningTask, preview: EncodedImage) -> str:
    task = running.task
    provider = running.runtime.provider_for(task.model)
    request = task.prompt.strip() or DEFAULT_CAPTION_REQUEST
    await running.report(ENCODED_AT, "describing")
    image = ImageData(preview.content_type, preview.data)
    caption = []
    async for chunk in provider.stream(request, task.model, [image]):
        caption.append(chunk.text)
        progress = None if chunk.progress is None else ENCODED_AT + chunk.progress * 0.15
        await running.add(Chunk(chunk.text, progress))
    return "".join(caption)


async def process_image(running: RunningTask) -> Outcome:
    params = ImageParams.model_validate(running.task.params)
    limits = _limits(running)
    [source] = await running.input_files()
    await running.report(0.0, f"decoding {source.name}")
    decoded = await in_thread(ImageInputError, open_image, source.data, limits)
    image = decoded.image
    await running.report(DECODED_AT, "decoded")
    steps = len(params.operations)
    for index, operation in enumerate(params.operations):
        stage = f"{describe_operation(operation)} ({index + 1}/{steps})"
        await running.report(DECODED_AT + (OPERATIONS_END_AT - DECODED_AT) * index / steps, stage)
        image = await in_thread(ImageInputError, apply_operation, image, operation, limits)
    output_format, quality = output_format_for(decoded.format, params)
    await running.report(OPERATIONS_END_AT, f"encoding {output_format}")
    result: EncodedImage = await in_thread(
        ImageInputError, encode_image, image, output_format, quality, limits
    )
    output: dict[str, Any] = {
        "width": result.width,
        "height": result.height,
        "mode": result.mode,
        "format": output_format,
        "operations": steps,
    }
    if params.describe:
        preview = await in_thread(ImageInputError, model_preview, image)
        output["caption"] = await _caption(running, preview)
    suffix = f"-processed.{result.extension}"
    name = PurePath(source.name).stem[: FILE_NAME_MAX_CHARS - len(suffix)] + suffix
    return Outcome(output, (TaskFile(name, result.content_type, result.data),))
