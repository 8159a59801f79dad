"""Image processing for IMAGE_PROCESSING tasks, on real images made with Pillow."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from PIL import Image, ImageFilter
from pydantic import ValidationError

from tasks.image_processing_params import (
    MAX_OPERATIONS,
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
from tasks.worker.bodies.image_processing_steps import (
    PREVIEW_MAX_SIDE,
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

LIMITS = ImageLimits(max_pixels=4_000_000, max_output_bytes=5_000_000)
RED = (255, 0, 0)
GREEN = (0, 255, 0)


# --- Images to work on ----------------------------------------------------------------


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    """An RGB image whose every pixel differs from its neighbours."""
    ramp = Image.linear_gradient("L")
    channels = (ramp, ramp.rotate(90), ramp.rotate(180))
    return Image.merge("RGB", [channel.resize((width, height)) for channel in channels])


def half_transparent(width: int = 40, height: int = 20) -> Image.Image:
    """RGBA: the left half fully transparent (but red underneath), the right half opaque
    green."""
    image = Image.new("RGBA", (width, height), (*RED, 0))
    image.paste((*GREEN, 255), (width // 2, 0, width, height))
    return image


def encoded(image: Image.Image, image_format: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def decoded(result: EncodedImage) -> Image.Image:
    image = Image.open(io.BytesIO(result.data))
    image.load()
    return image


def opened(image: Image.Image, image_format: str = "PNG") -> Image.Image:
    return open_image(encoded(image, image_format), LIMITS).image


def applied(image: Image.Image, *operations: ImageOperation) -> Image.Image:
    for operation in operations:
        image = apply_operation(image, operation, LIMITS)
    return image


def gray_at(image: Image.Image, xy: tuple[int, int]) -> int:
    value = image.getpixel(xy)
    assert isinstance(value, int), f"not a one-band pixel: {value!r}"
    return value


def colour_at(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(xy)
    assert isinstance(value, tuple), f"not a multi-band pixel: {value!r}"
    return value


def with_declared_size(png: bytes, width: int, height: int) -> bytes:
    """The PNG with its header claiming another size (and a valid header checksum)."""
    # After the 8-byte signature: the IHDR chunk's length and type, then 13 bytes of
    # data (width, height, five one-byte fields) and a CRC over type and data.
    assert png[12:16] == b"IHDR"
    chunk = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:]


# --- Opening --------------------------------------------------------------------------


def test_open_image_decodes_pixels_and_reports_the_format() -> None:
    source = gradient()

    result = open_image(encoded(source, "JPEG"), LIMITS)

    assert result.format == "JPEG"
    assert result.image.size == source.size
    assert result.image.mode == "RGB"


def test_open_image_turns_the_image_upright_by_its_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: viewers rotate it 90 degrees clockwise
    data = encoded(gradient(40, 20), "JPEG", exif=exif)

    assert open_image(data, LIMITS).image.size == (20, 40)


def test_open_image_takes_the_first_frame_of_an_animated_gif() -> None:
    frames = [Image.new("RGB", (10, 10), colour) for colour in (RED, GREEN)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0)

    image = open_image(data, LIMITS).image

    assert colour_at(image.convert("RGB"), (5, 5)) == RED


def test_empty_file_is_rejected() -> None:
    with pytest.raises(ImageInputError, match="empty"):
        open_image(b"", LIMITS)


@pytest.mark.parametrize(
    "data",
    [
        random.Random(0).randbytes(2_000),
        b"Just some text, not a picture.\n",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
        encoded(gradient(32, 32), "ICO"),
    ],
    ids=["random bytes", "text", "pdf", "ico"],
)
def test_a_file_in_no_supported_format_is_rejected_naming_the_formats(data: bytes) -> None:
    with pytest.raises(ImageInputError, match=r"PNG, JPEG, GIF, WEBP, BMP or TIFF"):
        open_image(data, LIMITS)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_a_truncated_file_is_rejected_as_corrupt(image_format: str) -> None:
    data = encoded(Image.effect_noise((64, 64), 50).convert("RGB"), image_format)

    with pytest.raises(ImageInputError, match="truncated or corrupt"):
        open_image(data[: len(data) // 2], LIMITS)


@pytest.mark.timeout(5)
def test_a_decompression_bomb_is_rejected_before_its_pixels_are_decoded() -> None:
    bomb = with_declared_size(encoded(Image.new("1", (8, 8))), 50_000, 50_000)

    with pytest.raises(ImageInputError, match="too large"):
        open_image(bomb, LIMITS)


@pytest.mark.timeout(5)
def test_an_image_over_the_pixel_limit_is_rejected_without_pillows_warning() -> None:
    # 100 million pixels: above Pillow's warning threshold, below its hard limit.
    large = with_declared_size(encoded(Image.new("1", (8, 8))), 10_000, 10_000)

    with pytest.raises(ImageInputError, match=r"10,000x10,000 pixels .* 4,000,000"):
        open_image(large, LIMITS)


def test_a_pixel_limit_pillow_cannot_honour_fails_fast() -> None:
    with pytest.raises(ValueError, match="Pillow's hard limit"):
        ImageLimits(max_pixels=10**12, max_output_bytes=1_000)


# --- Operations -----------------------------------------------------------------------


def test_resize_gives_exact_size() -> None:
    result = applied(opened(gradient(64, 48)), ResizeOperation(width=200, height=10))

    assert result.size == (200, 10)


def test_resize_past_the_pixel_limit_is_rejected() -> None:
    with pytest.raises(ImageInputError, match="more than the limit of 4,000,000 pixels"):
        applied(opened(gradient()), ResizeOperation(width=20_000, height=20_000))


def test_thumbnail_fits_within_the_box_keeping_the_aspect_ratio() -> None:
    result = applied(opened(gradient(64, 48)), ThumbnailOperation(width=32, height=32))

    assert result.size == (32, 24)


def test_thumbnail_never_enlarges() -> None:
    result = applied(opened(gradient(64, 48)), ThumbnailOperation(width=500, height=500))

    assert result.size == (64, 48)


def test_crop_keeps_the_box() -> None:
    source = gradient(64, 48)

    result = applied(opened(source), CropOperation(left=10, top=5, right=30, bottom=25))

    assert result.size == (20, 20)
    assert colour_at(result, (0, 0)) == colour_at(source, (10, 5))


def test_crop_outside_the_image_is_rejected() -> None:
    with pytest.raises(ImageInputError, match=r"outside the 64x48 image"):
        applied(opened(gradient(64, 48)), CropOperation(left=0, top=0, right=65, bottom=10))


def test_rotate_turns_counter_clockwise_and_expands_the_canvas() -> None:
    source = Image.new("RGB", (40, 20), GREEN)
    source.putpixel((0, 0), RED)

    result = applied(opened(source), RotateOperation(degrees=90))

    assert result.size == (20, 40)
    assert colour_at(result, (0, 39)) == RED  # top left went to bottom left


def test_rotate_without_expand_keeps_the_size() -> None:
    result = applied(opened(gradient(64, 48)), RotateOperation(degrees=30, expand=False))

    assert result.size == (64, 48)


def test_rotate_whose_expanded_canvas_passes_the_pixel_limit_is_rejected() -> None:
    limits = ImageLimits(max_pixels=2_000, max_output_bytes=1_000_000)
    image = open_image(encoded(gradient(50, 40)), limits).image

    with pytest.raises(ImageInputError, match="rotate by 45 degrees"):
        apply_operation(image, RotateOperation(degrees=45), limits)


@pytest.mark.parametrize(("source", "mode"), [(gradient(), "L"), (half_transparent(), "LA")])
def test_grayscale_keeps_transparency(source: Image.Image, mode: str) -> None:
    assert applied(opened(source), GrayscaleOperation()).mode == mode


def test_blur_softens_a_hard_edge() -> None:
    source = Image.new("L", (40, 10), 0)
    source.paste(255, (20, 0, 40, 10))

    result = applied(opened(source), BlurOperation(radius=3))

    assert 0 < gray_at(result, (19, 5)) < 255


def test_blur_does_not_bleed_the_colour_of_transparent_pixels() -> None:
    result = applied(opened(half_transparent()), BlurOperation(radius=3))

    red, green, _, alpha = colour_at(result, (20, 10))
    assert 0 < alpha < 255
    assert red < 10 < green


def test_sharpen_steepens_a_soft_edge() -> None:
    soft = Image.new("L", (40, 10), 60)
    soft.paste(190, (20, 0, 40, 10))
    soft = soft.filter(ImageFilter.GaussianBlur(2))

    result = applied(opened(soft), SharpenOperation())

    def rise(image: Image.Image) -> int:
        return gray_at(image, (21, 5)) - gray_at(image, (18, 5))

    assert rise(result) > rise(soft)


@pytest.mark.parametrize("operation", [BlurOperation(), SharpenOperation()])
def test_filters_work_on_palette_images(operation: ImageOperation) -> None:
    palette_image = opened(gradient().convert("P"), "GIF")
    assert palette_image.mode == "P"

    assert applied(palette_image, operation).mode == "RGB"


def test_convert_changes_no_pixels() -> None:
    image = opened(gradient())

    assert apply_operation(image, ConvertOperation(format="JPEG"), LIMITS) is image


def test_operations_chain_in_order() -> None:
    result = applied(
        opened(half_transparent(40, 20)),
        CropOperation(left=10, top=0, right=40, bottom=20),
        ResizeOperation(width=60, height=40),
        RotateOperation(degrees=90),
        GrayscaleOperation(),
        BlurOperation(radius=1),
    )

    assert result.size == (40, 60)
    assert result.mode == "LA"


@pytest.mark.parametrize(
    ("operation", "stage"),
    [
        (ResizeOperation(width=200, height=100), "resize to 200x100"),
        (ThumbnailOperation(width=64, height=64), "thumbnail within 64x64"),
        (CropOperation(left=10, top=20, right=110, bottom=70), "crop to 100x50 at (10, 20)"),
        (RotateOperation(degrees=90), "rotate by 90 degrees"),
        (RotateOperation(degrees=12.5, expand=False), "rotate by 12.5 degrees (canvas kept)"),
        (GrayscaleOperation(), "grayscale"),
        (BlurOperation(), "blur (radius 2)"),
        (SharpenOperation(), "sharpen"),
        (ConvertOperation(format="JPEG", quality=80), "convert to JPEG (quality 80)"),
    ],
)
def test_describe_operation_gives_a_short_stage_text(operation: ImageOperation, stage: str) -> None:
    assert describe_operation(operation) == stage


# --- Encoding -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_format", "content_type", "extension"),
    [
        ("PNG", "image/png", "png"),
        ("JPEG", "image/jpeg", "jpg"),
        ("WEBP", "image/webp", "webp"),
        ("GIF", "image/gif", "gif"),
        ("BMP", "image/bmp", "bmp"),
        ("TIFF", "image/tiff", "tiff"),
    ],
)
def test_every_output_format_encodes_a_transparent_image(
    image_format: ImageFormat, content_type: str, extension: str
) -> None:
    result = encode_image(opened(half_transparent()), image_format, None, LIMITS)

    output = decoded(result)
    assert output.format == image_format
    assert (result.content_type, result.extension) == (content_type, extension)
    assert output.size == (result.width, result.height) == (40, 20)
    assert output.mode == result.mode


def test_jpeg_from_rgba_flattens_transparency_onto_white() -> None:
    result = encode_image(opened(half_transparent()), "JPEG", None, LIMITS)

    output = decoded(result)
    assert output.mode == result.mode == "RGB"
    assert all(value > 245 for value in colour_at(output, (5, 10)))


def test_gif_output_keeps_transparency() -> None:
    output = decoded(encode_image(opened(half_transparent()), "GIF", None, LIMITS))

    rgba = output.convert("RGBA")
    assert colour_at(rgba, (5, 10))[3] == 0
    assert colour_at(rgba, (30, 10)) == (*GREEN, 255)


@pytest.mark.parametrize("image_format", ["JPEG", "WEBP"])
def test_convert_quality_trades_size_for_fidelity(image_format: str) -> None:
    image = opened(Image.effect_noise((128, 128), 40).convert("RGB"))
    sizes = {}
    for quality in (10, 95):
        operation = ConvertOperation.model_validate({"format": image_format, "quality": quality})
        params = ImageParams(operations=[operation])
        output_format, chosen_quality = output_format_for("PNG", params)
        sizes[quality] = len(encode_image(image, output_format, chosen_quality, LIMITS).data)

    assert sizes[10] < sizes[95]


def test_sixteen_bit_grayscale_is_scaled_not_clipped_for_jpeg() -> None:
    deep = Image.new("I;16", (8, 8), 0x8000)  # mid grey in 16 bits

    output = decoded(encode_image(opened(deep), "JPEG", None, LIMITS))

    assert output.mode == "L"
    assert 120 <= gray_at(output, (4, 4)) <= 136


def test_a_result_over_the_byte_limit_is_rejected() -> None:
    limits = ImageLimits(max_pixels=1_000_000, max_output_bytes=1_000)
    noise = open_image(encoded(Image.effect_noise((128, 128), 80)), limits).image

    with pytest.raises(ImageInputError, match=r"more than the limit of 1,000 bytes"):
        encode_image(noise, "PNG", None, limits)


def test_output_format_is_the_last_convert() -> None:
    params = ImageParams.model_validate(
        {
            "operations": [
                {"op": "convert", "format": "WEBP"},
                {"op": "grayscale"},
                {"op": "convert", "format": "jpg", "quality": 70},
            ]
        }
    )

    assert output_format_for("PNG", params) == ("JPEG", 70)


@pytest.mark.parametrize(
    ("input_format", "output_format"),
    [("GIF", "GIF"), ("TIFF", "TIFF"), ("MPO", "JPEG"), ("ICO", "PNG"), (None, "PNG")],
)
def test_output_format_without_convert_follows_the_input_when_writable(
    input_format: str | None, output_format: str
) -> None:
    params = ImageParams(operations=[GrayscaleOperation()])

    assert output_format_for(input_format, params) == (output_format, None)


def test_model_preview_bounds_the_longest_side() -> None:
    image = opened(gradient(3_000, 600))

    preview = model_preview(image)

    output = decoded(preview)
    assert max(output.size) == PREVIEW_MAX_SIDE
    assert output.size == (PREVIEW_MAX_SIDE, 205)
    assert (output.format, preview.content_type) == ("JPEG", "image/jpeg")


def test_model_preview_keeps_a_small_image_at_its_size() -> None:
    output = decoded(model_preview(opened(half_transparent())))

    assert output.size == (40, 20)
    assert output.mode == "RGB"


# --- Params ---------------------------------------------------------------------------


def test_params_parse_every_operation_from_json() -> None:
    params = ImageParams.model_validate_json(
        """{"operations": [
            {"op": "resize", "width": 200, "height": 100},
            {"op": "thumbnail", "width": 64, "height": 64},
            {"op": "crop", "left": 0, "top": 0, "right": 10, "bottom": 10},
            {"op": "rotate", "degrees": 12.5, "expand": false},
            {"op": "grayscale"},
            {"op": "blur"},
            {"op": "sharpen"},
            {"op": "convert", "format": "png"}
        ], "describe": true}"""
    )

    assert [type(operation) for operation in params.operations] == [
        ResizeOperation,
        ThumbnailOperation,
        CropOperation,
        RotateOperation,
        GrayscaleOperation,
        BlurOperation,
        SharpenOperation,
        ConvertOperation,
    ]
    assert params.describe is True
    assert params.operations[5] == BlurOperation(radius=2)


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        ({"op": "posterize"}, "does not match any of the expected tags"),
        ({"op": "grayscale", "strength": 2}, "Extra inputs are not permitted"),
        ({"op": "resize", "width": 0, "height": 10}, "greater than or equal to 1"),
        ({"op": "resize", "width": 10, "height": 20_001}, "less than or equal to 20000"),
        ({"op": "crop", "left": 10, "top": 0, "right": 10, "bottom": 5}, "right > left"),
        ({"op": "blur", "radius": 0}, "greater than 0"),
        ({"op": "blur", "radius": 101}, "less than or equal to 100"),
        ({"op": "rotate", "degrees": "NaN"}, "finite number"),
        ({"op": "convert", "format": "PSD"}, "'PNG', 'JPEG', 'WEBP', 'GIF', 'BMP' or 'TIFF'"),
        ({"op": "convert", "format": "PNG", "quality": 80}, "only to JPEG and WEBP"),
        ({"op": "convert", "format": "JPEG", "quality": 0}, "greater than or equal to 1"),
    ],
)
def test_invalid_operations_are_rejected(operation: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        ImageParams.model_validate({"operations": [operation]})


@pytest.mark.parametrize("count", [0, MAX_OPERATIONS + 1])
def test_the_number_of_operations_is_bounded(count: int) -> None:
    operations = [{"op": "grayscale"}] * count

    with pytest.raises(ValidationError, match="operations"):
        ImageParams.model_validate({"operations": operations})


def test_params_reject_unknown_top_level_fields() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ImageParams.model_validate({"operations": [{"op": "sharpen"}], "caption": True})


def test_a_result_too_wide_for_webp_is_a_clear_error() -> None:
    image = Image.new("RGB", (17_000, 1))

    with pytest.raises(ImageInputError, match="cannot be saved as WEBP"):
        encode_image(image, "WEBP", None, LIMITS)
