"""The params of an IMAGE_PROCESSING task: the operations applied in order, and whether
to ask for a caption. Apart from `tasks.worker.bodies.image_processing_steps` (which
loads Pillow), so the API can check them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

# A side longer than this is a typo or an attack rather than a photo (the largest camera
# sensors are about 15,000 px wide); the pixel limit still bounds width x height.
MAX_DIMENSION = 20_000
# Each operation costs a full pass over the image; a longer list is not a real edit.
MAX_OPERATIONS = 20
# Past this radius a Gaussian blur leaves a flat colour; bigger values only cost time.
MAX_BLUR_RADIUS = 100.0

ImageFormat = Literal["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"]
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}
LOSSY_FORMATS = frozenset({"JPEG", "WEBP"})

_Dimension = Annotated[int, Field(ge=1, le=MAX_DIMENSION)]
_Coordinate = Annotated[int, Field(ge=0, le=MAX_DIMENSION)]


class _Params(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ResizeOperation(_Params):
    """Scale to exactly width x height, ignoring the aspect ratio."""

    op: Literal["resize"] = "resize"
    width: _Dimension
    height: _Dimension

    def describe(self) -> str:
        return f"resize to {self.width}x{self.height}"


class ThumbnailOperation(_Params):
    """Scale down to fit within width x height, keeping the aspect ratio; an image that
    already fits is left as it is (never enlarged)."""

    op: Literal["thumbnail"] = "thumbnail"
    width: _Dimension
    height: _Dimension

    def describe(self) -> str:
        return f"thumbnail within {self.width}x{self.height}"


class CropOperation(_Params):
    """Keep the box from (left, top) up to, not including, (right, bottom)."""

    op: Literal["crop"] = "crop"
    left: _Coordinate
    top: _Coordinate
    right: _Coordinate
    bottom: _Coordinate

    @model_validator(mode="after")
    def _box_is_not_empty(self) -> CropOperation:
        if self.right <= self.left or self.bottom <= self.top:
            raise ValueError("the crop box needs right > left and bottom > top")
        return self

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.left, self.top, self.right, self.bottom

    def describe(self) -> str:
        width, height = self.right - self.left, self.bottom - self.top
        return f"crop to {width}x{height} at ({self.left}, {self.top})"


class RotateOperation(_Params):
    """Rotate counter-clockwise; with expand the canvas grows to hold the whole image."""

    op: Literal["rotate"] = "rotate"
    degrees: Annotated[float, Field(allow_inf_nan=False)]
    expand: bool = True

    def describe(self) -> str:
        return f"rotate by {self.degrees:g} degrees" + ("" if self.expand else " (canvas kept)")


class GrayscaleOperation(_Params):
    op: Literal["grayscale"] = "grayscale"

    def describe(self) -> str:
        return "grayscale"


class BlurOperation(_Params):
    op: Literal["blur"] = "blur"
    radius: Annotated[float, Field(gt=0, le=MAX_BLUR_RADIUS, allow_inf_nan=False)] = 2.0

    def describe(self) -> str:
        return f"blur (radius {self.radius:g})"


class SharpenOperation(_Params):
    op: Literal["sharpen"] = "sharpen"

    def describe(self) -> str:
        return "sharpen"


class ConvertOperation(_Params):
    """Choose the output format; quality (1..100) applies to JPEG and WEBP only."""

    op: Literal["convert"] = "convert"
    format: ImageFormat
    quality: Annotated[int, Field(ge=1, le=100)] | None = None

    @field_validator("format", mode="before")
    @classmethod
    def _normalise_format(cls, value: object) -> object:
        # Accept "png" and the common file extensions "jpg" and "tif".
        if isinstance(value, str):
            upper = value.strip().upper()
            return _FORMAT_ALIASES.get(upper, upper)
        return value

    @model_validator(mode="after")
    def _quality_only_for_lossy(self) -> ConvertOperation:
        if self.quality is not None and self.format not in LOSSY_FORMATS:
            raise ValueError(f"quality applies only to JPEG and WEBP, not to {self.format}")
        return self

    def describe(self) -> str:
        quality = "" if self.quality is None else f" (quality {self.quality})"
        return f"convert to {self.format}{quality}"


ImageOperation = Annotated[
    ResizeOperation
    | ThumbnailOperation
    | CropOperation
    | RotateOperation
    | GrayscaleOperation
    | BlurOperation
    | SharpenOperation
    | ConvertOperation,
    Field(discriminator="op"),
]


class ImageParams(_Params):
    """The params of an IMAGE_PROCESSING task: operations applied in order."""

    operations: Annotated[list[ImageOperation], Field(min_length=1, max_length=MAX_OPERATIONS)]
    # Ask a vision model for a caption of the result; the worker does that.
    describe: bool = False
