"""Each kind of task has its own queue: a worker serves only the queues it is given."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from tests.fixtures.files import image_bytes, inline
from tests.fixtures.graphql import create_task, get_task, poll_until_finished
from tests.fixtures.stack import Stack


def test_tasks_wait_for_a_worker_of_their_own_kind(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    stack.start_worker("--queues", "image_processing")
    stack.start_api()
    text = create_task(stack, prompt="Wait for a text worker", model="echo")
    image = create_task(
        stack,
        kind="IMAGE_PROCESSING",
        params={"operations": [{"op": "grayscale"}]},
        files=[inline("photo.png", image_bytes())],
    )

    assert poll_until_finished(stack, image["id"])["status"] == "COMPLETED"
    waiting = get_task(stack, text["id"])
    assert waiting is not None and waiting["status"] == "PENDING"

    stack.start_worker("--queues", "text_generation", "--no-beat")
    assert poll_until_finished(stack, text["id"])["status"] == "COMPLETED"


def test_an_unknown_queue_is_refused_with_the_list_of_queues(stack: Stack) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "graphql_app.cli", "worker", "--queues", "text,image_processing"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode != 0
    assert "Unknown queue text" in finished.stderr
    assert "text_generation, image_processing, data_analysis, maintenance" in finished.stderr
