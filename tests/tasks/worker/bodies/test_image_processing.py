"""IMAGE_PROCESSING end to end: real images made here, a real worker, and the artifact
downloaded from the API."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pytest

from tests.fixtures.files import decode_image, download, image_bytes, inline
from tests.fixtures.graphql import create_task, follow, poll_until_finished
from tests.fixtures.openai_server import OpenAICompatibleServer, prompt_of
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.anyio
SOURCE_SIZE = (64, 48)


def image_task(stack: Stack, operations: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    params = {"operations": operations, **extra.pop("params", {})}
    data = extra.pop("data", None) or image_bytes(SOURCE_SIZE)
    name = extra.pop("name", "photo.png")
    return create_task(
        stack, kind="IMAGE_PROCESSING", params=params, files=[inline(name, data)], **extra
    )


def run_image_task(stack: Stack, operations: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    task = image_task(stack, operations, **extra)
    assert task["__typename"] == "Task", task
    return poll_until_finished(stack, task["id"])


@pytest.mark.parametrize(
    ("operation", "size", "mode", "content_type"),
    [
        ({"op": "resize", "width": 32, "height": 20}, (32, 20), "RGB", "image/png"),
        ({"op": "thumbnail", "width": 16, "height": 16}, (16, 12), "RGB", "image/png"),
        (
            {"op": "crop", "left": 10, "top": 5, "right": 40, "bottom": 25},
            (30, 20),
            "RGB",
            "image/png",
        ),
        ({"op": "rotate", "degrees": 90}, (48, 64), "RGB", "image/png"),
        ({"op": "grayscale"}, SOURCE_SIZE, "L", "image/png"),
        ({"op": "blur", "radius": 2}, SOURCE_SIZE, "RGB", "image/png"),
        ({"op": "sharpen"}, SOURCE_SIZE, "RGB", "image/png"),
        ({"op": "convert", "format": "JPEG", "quality": 80}, SOURCE_SIZE, "RGB", "image/jpeg"),
    ],
)
def test_each_operation_gives_an_artifact_of_the_expected_size_and_mode(
    stack: Stack,
    operation: dict[str, Any],
    size: tuple[int, int],
    mode: str,
    content_type: str,
) -> None:
    final = run_image_task(stack, [operation])

    assert final["status"] == "COMPLETED", final["error"]
    [artifact] = final["artifacts"]
    assert artifact["contentType"] == content_type
    response = download(artifact["url"])
    assert response.headers["content-type"] == content_type
    assert len(response.content) == artifact["size"]
    image = decode_image(response.content)
    assert (image.size, image.mode) == (size, mode)
    assert (final["output"]["width"], final["output"]["height"]) == size
    assert final["inputs"][0]["name"] == "photo.png"


def test_operations_apply_in_order_and_change_the_pixels(stack: Stack) -> None:
    final = run_image_task(
        stack,
        [
            {"op": "crop", "left": 0, "top": 0, "right": 32, "bottom": 48},
            {"op": "rotate", "degrees": 90},
            {"op": "resize", "width": 24, "height": 8},
        ],
    )

    assert final["status"] == "COMPLETED", final["error"]
    image = decode_image(download(final["artifacts"][0]["url"]).content)
    # Crop to 32x48, rotate to 48x32, resize to 24x8: in another order the size differs.
    assert image.size == (24, 8)
    assert final["output"]["operations"] == 3


async def test_progress_moves_with_each_operation(stack: Stack) -> None:
    operations = [{"op": "grayscale"}, {"op": "blur", "radius": 1}, {"op": "sharpen"}]
    task = image_task(stack, operations)

    updates = await follow(stack, task["id"])

    stages = [update["stage"] for update in updates]
    progress = [update["progress"] for update in updates]
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    for step in ("grayscale", "blur", "sharpen"):
        assert any(stage and step in stage for stage in stages), stages
    assert updates[-1]["status"] == "COMPLETED"
    # Built from the WebSocket's address: a link a browser can fetch.
    assert updates[-1]["task"]["artifacts"][0]["url"].startswith(stack.api_url + "/tasks/")


def test_describe_asks_the_model_with_the_image_and_streams_the_caption(
    stack: Stack, openai_server: OpenAICompatibleServer
) -> None:
    final = run_image_task(
        stack,
        [{"op": "thumbnail", "width": 32, "height": 32}],
        params={"describe": True},
        prompt="What colour is it?",
        model="echo",
    )

    assert final["status"] == "COMPLETED", final["error"]
    assert final["result"].startswith("Echo: What colour is it?")
    assert final["output"]["caption"] == final["result"]
    request = next(
        seen["body"]
        for seen in openai_server.recorded.requests
        if prompt_of(seen["body"]["messages"][-1]).startswith("What colour is it?")
    )
    parts = request["messages"][-1]["content"]
    assert [part["type"] for part in parts] == ["text", "image_url"]
    assert parts[1]["image_url"]["url"].startswith("data:image/")


def test_the_demo_model_captions_offline(stack: Stack) -> None:
    final = run_image_task(stack, [{"op": "grayscale"}], params={"describe": True}, model="demo")

    assert final["status"] == "COMPLETED", final["error"]
    assert "demo model" in final["result"]
    assert "64 pixels wide and 48 high" in final["result"]


def _png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose header claims a huge size: a decompression bomb."""
    data = image_bytes((8, 8))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return data[:8] + ihdr + data[8 + len(ihdr) :]


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("bomb.png", _png_claiming(50_000, 50_000), "pixels"),
        ("truncated.png", image_bytes((200, 200))[:400], "truncated"),
        ("notes.png", b"these are words, not pixels", "not an image"),
    ],
)
def test_a_bad_image_fails_the_task_clearly_and_the_worker_keeps_serving(
    stack: Stack, name: str, data: bytes, expected: str
) -> None:
    failed = run_image_task(stack, [{"op": "grayscale"}], data=data, name=name)

    assert failed["status"] == "FAILED"
    assert expected in failed["error"].lower(), failed["error"]
    assert "unexpectedly" not in failed["error"]
    assert failed["attempts"] == 1
    assert run_image_task(stack, [{"op": "grayscale"}])["status"] == "COMPLETED"
