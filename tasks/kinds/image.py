"""IMAGE_PROCESSING: operations applied in order to one input image, and if asked a
caption from a vision-capable model."""

from tasks.image_processing_params import ImageParams
from tasks.kinds.kind import InputFile, Kind

KIND = Kind(
    name="IMAGE_PROCESSING",
    order=1,
    work="tasks.worker.bodies.image_processing:process_image",
    summary="resize, crop, rotate, filter or convert an image (a caption if asked)",
    prompt_help="guides the caption",
    params=ImageParams,
    params_help="{operations: [{op: resize|thumbnail|crop|rotate|grayscale|blur|sharpen|"
    "convert, ...}], describe}",
    input_file=InputFile(
        what="an image",
        formats="PNG, JPEG, GIF, WEBP, BMP or TIFF",
        suffixes=frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"}),
    ),
)
