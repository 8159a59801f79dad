"""Image processing for IMAGE_PROCESSING tasks: decode, apply operations, encode.

Pure and synchronous (bytes in, bytes out), so the worker can run it in a thread and
report progress or hear a cancel between two operations:

    params = ImageParams.model_validate(raw_params)  # tasks.image_processing_params
    decoded = open_image(data, limits)
    image = decoded.image
    for operation in params.operations:
        stage = describe_operation(operation)
        image = apply_operation(image, operation, limits)
    output_format, quality = output_format_for(decoded.format, params)
    result = encode_image(image, output_format, quality, limits)

`open_image` returns a `DecodedImage` (the pixels and the input's format) because Pillow
forgets the format once an image is transformed. `convert` changes no pixels: the output
format belongs to the operation list as a whole, so `output_format_for` reads it from the
params and `apply_operation` returns the image unchanged for it.

Every expected failure is an `ImageInputError` whose message can be shown to the user.
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import assert_never

from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from tasks.image_processing_params import (
    LOSSY_FORMATS,
    BlurOperation,
    ConvertOperation,
    CropOperation,
    GrayscaleOperation,
    ImageFormat,
    ImageOperation,
    ImageParams,
    ResizeOperation,
    RotateOperation,
    SharpenOperation,
    ThumbnailOperation,
)

# Vision models scale inputs down to about this size anyway; a bigger preview only
# makes the request slower.
PREVIEW_MAX_SIDE = 1024
PREVIEW_JPEG_QUALITY = 85

# Pillow names a JPEG with a multi-picture extension (as many cameras write) "MPO".
_INPUT_FORMAT_ALIASES = {"MPO": "JPEG"}
_WHITE = (255, 255, 255, 255)

# The 8-bit modes every operation handles; other modes are converted to one of these.
_STANDARD_MODES = frozenset({"L", "LA", "RGB", "RGBA"})
_ALPHA_MODES = frozenset({"LA", "RGBA"})
_HIGH_BIT_GRAY_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
# Pillow resamples palette and 1-bit images with nearest neighbour only, which looks
# jagged; they are converted first.
_NEAREST_ONLY_MODES = frozenset({"P", "PA", "1"})
_FILTERABLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "CMYK"})
# Filters run on premultiplied alpha, so fully transparent pixels (whose colour is
# arbitrary) do not bleed into the visible edge.
_PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}

# What Pillow's decoders raise on damaged input: OSError for truncation, SyntaxError for
# a broken structure, the others from plugins that read malformed fields.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error)
_CORRUPT = "The image file is truncated or corrupt and cannot be decoded."
_UNSUPPORTED = "The file is not an image in a supported format (PNG, JPEG, GIF, WEBP, BMP or TIFF)."


class ImageInputError(Exception):
    """The image or the requested operation cannot be processed; str(error) is a clear
    sentence shown to the user as the task's error."""


@dataclass(frozen=True)
class ImageLimits:
    """max_pixels bounds the input and every intermediate result (a decompression-bomb
    guard); max_output_bytes bounds the encoded result."""

    max_pixels: int
    max_output_bytes: int

    def __post_init__(self) -> None:
        if self.max_pixels < 1 or self.max_output_bytes < 1:
            raise ValueError("Image limits must be positive.")
        ceiling = _pillow_pixel_ceiling()
        if ceiling is not None and self.max_pixels > ceiling:
            raise ValueError(
                f"The image pixel limit {self.max_pixels:,} is above Pillow's hard limit of "
                f"{ceiling:,}; set a smaller one."
            )


@dataclass(frozen=True)
class DecodedImage:
    """A decoded input: its pixels, and its format (which Pillow forgets on the first
    transformation)."""

    image: Image.Image
    format: ImageFormat


@dataclass(frozen=True)
class EncodedImage:
    """An encoded result; width, height and mode describe the pixels as stored."""

    data: bytes
    content_type: str
    extension: str
    width: int
    height: int
    mode: str


@dataclass(frozen=True)
class _FormatSpec:
    content_type: str
    extension: str
    # The modes Pillow writes faithfully in this format; others are converted first.
    writable_modes: frozenset[str]


_FORMATS: dict[ImageFormat, _FormatSpec] = {
    "PNG": _FormatSpec("image/png", "png", frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"})),
    "JPEG": _FormatSpec("image/jpeg", "jpg", frozenset({"L", "RGB", "CMYK"})),
    "WEBP": _FormatSpec("image/webp", "webp", frozenset({"RGB", "RGBA"})),
    # Pillow quantises RGB(A) to a palette itself, keeping a transparent entry.
    "GIF": _FormatSpec("image/gif", "gif", frozenset({"L", "P", "RGB", "RGBA"})),
    # Pillow writes RGBA as BMP but readers drop the alpha, so it is flattened instead.
    "BMP": _FormatSpec("image/bmp", "bmp", frozenset({"1", "L", "P", "RGB"})),
    "TIFF": _FormatSpec(
        "image/tiff",
        "tiff",
        frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F"}),
    ),
}


# --- Decoding -------------------------------------------------------------------------


def open_image(data: bytes, limits: ImageLimits) -> DecodedImage:
    """Decode an input image fully, upright as a viewer shows it (EXIF orientation
    applied). Animated GIFs and multi-page TIFFs give their first frame. Raises
    ImageInputError for an empty, unsupported, oversized, truncated or corrupt file."""
    if not data:
        raise ImageInputError("The image file is empty.")
    with _pixel_limit_is_ours():
        image = _open_header(data, limits)
        _check_input_size(image.size, limits)
        _decode(image, limits)
    image_format = _known_format(image.format)
    if image_format is None:
        raise ImageInputError(_UNSUPPORTED)
    return DecodedImage(image=image, format=image_format)


def _open_header(data: bytes, limits: ImageLimits) -> Image.Image:
    # Image.open reads only the header; pixels are decoded by load().
    try:
        return Image.open(io.BytesIO(data), formats=list(_FORMATS))
    except UnidentifiedImageError:
        raise ImageInputError(_UNSUPPORTED) from None
    except Image.DecompressionBombError:
        raise ImageInputError(_too_large_input(limits)) from None
    except _DECODE_ERRORS:
        raise ImageInputError(_CORRUPT) from None


def _decode(image: Image.Image, limits: ImageLimits) -> None:
    # load() decodes the current frame only, which is the first one.
    try:
        image.load()
    except Image.DecompressionBombError:
        raise ImageInputError(_too_large_input(limits)) from None
    except _DECODE_ERRORS:
        raise ImageInputError(_CORRUPT) from None
    # A damaged EXIF block is no reason to reject pixels that decoded fine.
    with contextlib.suppress(*_DECODE_ERRORS):
        # In place: a second full copy of a large image would double the memory peak.
        ImageOps.exif_transpose(image, in_place=True)


def _check_input_size(size: tuple[int, int], limits: ImageLimits) -> None:
    width, height = size
    if width * height > limits.max_pixels:
        raise ImageInputError(
            f"The image is too large: {width:,}x{height:,} pixels is more than the limit "
            f"of {limits.max_pixels:,} pixels."
        )


def _too_large_input(limits: ImageLimits) -> str:
    return f"The image is too large: it has more than the limit of {limits.max_pixels:,} pixels."


def _pillow_pixel_ceiling() -> int | None:
    # Pillow raises DecompressionBombError above twice its warning threshold.
    threshold = Image.MAX_IMAGE_PIXELS
    return None if threshold is None else 2 * threshold


@contextlib.contextmanager
def _pixel_limit_is_ours() -> Iterator[None]:
    # ImageLimits.max_pixels is checked before any pixel is decoded, so Pillow's own
    # DecompressionBombWarning (which a strict warning filter turns into an exception)
    # only adds noise. catch_warnings changes process-wide state, but only for this
    # one warning category, which nothing else in the worker emits.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


# --- Operations -----------------------------------------------------------------------


def describe_operation(operation: ImageOperation) -> str:
    """A short stage text for progress, e.g. 'resize to 200x100' or 'blur (radius 2)'."""
    return operation.describe()


def apply_operation(
    image: Image.Image, operation: ImageOperation, limits: ImageLimits
) -> Image.Image:
    """Apply one operation and return the result (a new image, or the same one for
    `convert`). Raises ImageInputError when the operation does not fit the image or its
    result would have more than limits.max_pixels pixels."""
    with _pixel_limit_is_ours():
        result = _apply(image, operation, limits)
    # A net under the per-operation checks, which run before any memory is allocated.
    _check_result_size(result.size, operation, limits)
    return result


def _apply(image: Image.Image, operation: ImageOperation, limits: ImageLimits) -> Image.Image:
    match operation:
        case ResizeOperation(width=width, height=height):
            _check_result_size((width, height), operation, limits)
            return _resamplable(image).resize((width, height), Image.Resampling.LANCZOS)
        case ThumbnailOperation():
            return _thumbnail(image, operation)
        case CropOperation():
            return _crop(image, operation)
        case RotateOperation():
            return _rotate(image, operation, limits)
        case GrayscaleOperation():
            return _grayscale(image)
        case BlurOperation(radius=radius):
            return _filter(image, ImageFilter.GaussianBlur(radius))
        case SharpenOperation():
            return _filter(image, ImageFilter.SHARPEN())
        case ConvertOperation():
            return image
        case _:
            assert_never(operation)


def _check_result_size(
    size: tuple[int, int], operation: ImageOperation, limits: ImageLimits
) -> None:
    width, height = size
    if width * height > limits.max_pixels:
        raise ImageInputError(
            f"The result of '{operation.describe()}' would be {width:,}x{height:,} pixels, "
            f"more than the limit of {limits.max_pixels:,} pixels."
        )


def _thumbnail(image: Image.Image, operation: ThumbnailOperation) -> Image.Image:
    if image.width <= operation.width and image.height <= operation.height:
        return image
    bounds = (operation.width, operation.height)
    return ImageOps.contain(_resamplable(image), bounds, Image.Resampling.LANCZOS)


def _crop(image: Image.Image, operation: CropOperation) -> Image.Image:
    if operation.right > image.width or operation.bottom > image.height:
        raise ImageInputError(
            f"The crop box {operation.box} lies outside the {image.width}x{image.height} "
            "image; right must be at most the width and bottom at most the height."
        )
    return image.crop(operation.box)


def _rotate(image: Image.Image, operation: RotateOperation, limits: ImageLimits) -> Image.Image:
    if operation.expand:
        _check_result_size(_rotated_size(image.size, operation.degrees), operation, limits)
    return _resamplable(image).rotate(
        operation.degrees, resample=Image.Resampling.BICUBIC, expand=operation.expand
    )


def _rotated_size(size: tuple[int, int], degrees: float) -> tuple[int, int]:
    """An upper bound on the canvas of an expanding rotation: Pillow rounds each edge
    outwards, which can add a pixel to the exact span."""
    radians = math.radians(degrees)
    cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
    width, height = size
    return math.ceil(width * cos + height * sin) + 1, math.ceil(width * sin + height * cos) + 1


def _grayscale(image: Image.Image) -> Image.Image:
    if image.mode in _HIGH_BIT_GRAY_MODES or image.mode in {"1", "L", "LA"}:
        return image
    standard = _standard(image)
    return standard.convert("LA" if standard.mode == "RGBA" else "L")


def _filter(image: Image.Image, image_filter: ImageFilter.Filter) -> Image.Image:
    if image.mode not in _FILTERABLE_MODES:
        image = _standard(image)
    premultiplied = _PREMULTIPLIED.get(image.mode)
    if premultiplied is None:
        return image.filter(image_filter)
    return image.convert(premultiplied).filter(image_filter).convert(image.mode)


# --- Modes ----------------------------------------------------------------------------


def _standard(image: Image.Image) -> Image.Image:
    """The image in L, LA, RGB or RGBA, keeping transparency."""
    if image.mode in _STANDARD_MODES:
        return image
    if image.mode in _HIGH_BIT_GRAY_MODES:
        return _gray_to_8_bit(image)
    if image.mode == "1":
        return image.convert("L")
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _gray_to_8_bit(image: Image.Image) -> Image.Image:
    if image.mode == "F":
        # Float images have no standard range; values outside 0..255 are clipped.
        return image.convert("L")
    # Integer modes hold 16-bit samples (as in 16-bit PNG and TIFF): keep the high byte
    # rather than clipping everything above 255 to white.
    return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")


def _resamplable(image: Image.Image) -> Image.Image:
    return _standard(image) if image.mode in _NEAREST_ONLY_MODES else image


def _writable(image: Image.Image, modes: frozenset[str]) -> Image.Image:
    """The image in a mode the format writes: alpha kept where the format holds it,
    otherwise flattened onto white."""
    if image.mode in modes:
        return image
    image = _standard(image)
    if image.mode in modes:
        return image
    if image.mode in _ALPHA_MODES:  # alpha the format cannot hold in this mode
        if "RGBA" in modes:
            return image.convert("RGBA")
        image = _flatten_onto_white(image)
        if image.mode in modes:
            return image
    return image.convert("RGB")


def _flatten_onto_white(image: Image.Image) -> Image.Image:
    background = Image.new("RGBA", image.size, _WHITE)
    background.alpha_composite(image.convert("RGBA"))
    return background.convert("L" if image.mode == "LA" else "RGB")


# --- Encoding -------------------------------------------------------------------------


def output_format_for(
    input_format: str | None, params: ImageParams
) -> tuple[ImageFormat, int | None]:
    """The format and quality of the result: the last `convert` operation if any, else
    the input's format if it is one we write (at the encoder's default quality), else
    PNG."""
    for operation in reversed(params.operations):
        if isinstance(operation, ConvertOperation):
            return operation.format, operation.quality
    return _known_format(input_format) or "PNG", None


def _known_format(name: str | None) -> ImageFormat | None:
    """The format we write under Pillow's name `name`, if any."""
    name = _INPUT_FORMAT_ALIASES.get(name, name) if name else None
    return next((image_format for image_format in _FORMATS if image_format == name), None)


def encode_image(
    image: Image.Image, output_format: ImageFormat, quality: int | None, limits: ImageLimits
) -> EncodedImage:
    """Encode the result, converting its mode where the format needs it (JPEG, for one,
    holds no alpha: transparent areas become white). Metadata such as EXIF is not
    carried over. quality applies to JPEG and WEBP and is ignored otherwise. Raises
    ImageInputError when the result takes more than limits.max_output_bytes."""
    encoded = _encode(image, output_format, quality)
    if len(encoded.data) > limits.max_output_bytes:
        raise ImageInputError(
            f"The result is too large: {len(encoded.data):,} bytes as {output_format}, more "
            f"than the limit of {limits.max_output_bytes:,} bytes. Try a smaller size or "
            "a compressed format such as JPEG or WEBP."
        )
    return encoded


def model_preview(image: Image.Image) -> EncodedImage:
    """A small JPEG copy (longest side at most PREVIEW_MAX_SIDE) to send to a vision
    model for a caption."""
    preview = _standard(image)
    if max(preview.size) > PREVIEW_MAX_SIDE:
        bounds = (PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE)
        preview = ImageOps.contain(preview, bounds, Image.Resampling.LANCZOS)
    return _encode(preview, "JPEG", PREVIEW_JPEG_QUALITY)


def _encode(image: Image.Image, output_format: ImageFormat, quality: int | None) -> EncodedImage:
    spec = _FORMATS[output_format]
    writable = _writable(image, spec.writable_modes)
    buffer = io.BytesIO()
    options = {"quality": quality} if quality is not None and output_format in LOSSY_FORMATS else {}
    try:
        writable.save(buffer, format=output_format, **options)
    except (OSError, ValueError) as error:
        # Each format has limits of its own: WEBP, for one, takes at most 16,383 px a side.
        raise ImageInputError(
            f"The result ({writable.width}x{writable.height}) cannot be saved as "
            f"{output_format}: {error}. Choose another format or a smaller size."
        ) from None
    data = buffer.getvalue()
    return EncodedImage(
        data=data,
        content_type=spec.content_type,
        extension=spec.extension,
        width=writable.width,
        height=writable.height,
        mode=_stored_mode(data),
    )


def _stored_mode(data: bytes) -> str:
    # Read back from the header: some encoders change the mode (GIF stores a palette).
    with _pixel_limit_is_ours(), Image.open(io.BytesIO(data)) as stored:
        return stored.mode
