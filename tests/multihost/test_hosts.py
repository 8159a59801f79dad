"""The service with its parts on different hosts (see conftest.py): what a user who
outgrows one machine relies on, shown across real network hops, with hosts taken away
and links cut while tasks run.

The cases share one set of hosts, in this order: the ones that take a host away come
last, since a host taken away stays away."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from tests.fixtures.files import image_bytes
from tests.fixtures.stack import wait_until
from tests.fixtures.tasks import logged_events, read_task
from tests.multihost.conftest import Cluster

# Building six hosts and starting four processes on a shared machine takes a while.
pytestmark = pytest.mark.timeout(300)
FINISH_TIMEOUT_SECONDS = 60.0
# How long the link between a worker host and Redis stays cut.
CUT_SECONDS = 10.0
# Tasks sent before the cut; the broker hands them to both hosts' text workers.
TASKS_DURING_CUT = 8


def _create(cluster: Cluster, api: str, **task_input: Any) -> str:
    answer = cluster.client("create", cluster.api_url(api), json.dumps(task_input))
    task = answer["data"]["createTask"]
    assert task["__typename"] == "Task", answer
    return str(task["id"])


def _read_lines(process: Any) -> list[dict[str, Any]]:
    """The rest of a client command's lines, once it has ended."""
    lines = [json.loads(line) for line in process.stdout]
    process.stdout.close()
    assert process.wait(FINISH_TIMEOUT_SECONDS) == 0
    return lines


def _finished(cluster: Cluster, task_id: str) -> Any:
    task = read_task(cluster.database_url, task_id)
    return task if task.status.value in ("COMPLETED", "FAILED", "CANCELLED") else None


def _assert_complete_story(cluster: Cluster, task_id: str, lines: list[dict[str, Any]]) -> None:
    """The updates the client got are every logged change, once each, in order, and
    their text adds up to the result."""
    assert lines[-1] == {"completed": True}, lines
    updates = [line["update"] for line in lines if "update" in line]
    logged = logged_events(cluster.database_url, task_id)
    assert [update["sequence"] for update in updates] == [event.sequence for event in logged]
    assert updates[-1]["status"] == "COMPLETED"
    text = "".join(update["delta"] or "" for update in updates)
    assert text and text == updates[-1]["task"]["result"]
    assert [event.status for event in logged].count("COMPLETED") == 1


def _runner(cluster: Cluster, task_id: str) -> str:
    """The worker host whose log names the task."""
    hosts = [name for name in ("worker1", "worker2") if task_id in cluster.log(name)]
    assert len(hosts) == 1, hosts
    return hosts[0]


def test_a_subscriber_on_api_host_1_gets_every_change_of_a_task_created_through_api_host_2(
    cluster: Cluster,
) -> None:
    task_id = _create(cluster, "api2", prompt="Cross the hosts", model="demo")
    follower = cluster.start_client("follow", task_id, cluster.api_url("api1"))

    lines = _read_lines(follower)

    _assert_complete_story(cluster, task_id, lines)
    assert {line["via"] for line in lines if "update" in line} == {cluster.api_url("api1")}
    assert _runner(cluster, task_id) in ("worker1", "worker2")


def test_an_artifact_made_on_worker_host_1_downloads_through_api_host_2(
    cluster: Cluster,
) -> None:
    image = base64.b64encode(image_bytes((64, 48))).decode()
    task_id = _create(
        cluster,
        "api1",
        kind="IMAGE_PROCESSING",
        params={"operations": [{"op": "rotate", "degrees": 90}]},
        files=[{"name": "photo.png", "base64": image}],
    )
    follower = cluster.start_client("follow", task_id, cluster.api_url("api2"))
    lines = _read_lines(follower)
    final = lines[-2]["update"]["task"]
    [artifact] = final["artifacts"]

    downloaded = cluster.client("download", artifact["url"])

    # Only worker host 1 takes image tasks (conftest.py), so it made the file.
    assert _runner(cluster, task_id) == "worker1"
    assert artifact["url"].startswith(cluster.api_url("api2") + "/")
    assert downloaded["status"] == 200
    assert downloaded["size"] == artifact["size"]
    assert base64.b64decode(downloaded["head"]) == b"\x89PNG\r\n\x1a\n"


def test_with_the_link_from_a_worker_host_to_redis_cut_for_10_s_no_task_is_lost_or_done_twice(
    cluster: Cluster,
) -> None:
    worker = cluster.host("worker1")
    redis_address = cluster.host("db").addresses[1]
    task_ids = [
        _create(cluster, "api2", prompt=f"Through the outage {index}", model="demo")
        for index in range(TASKS_DURING_CUT)
    ]
    # Which host's text worker gets a message is the broker's choice: while worker host 1
    # has none, one more task a second, so that it surely runs some when its link is cut.
    deadline = time.monotonic() + FINISH_TIMEOUT_SECONDS
    while not any(task_id in cluster.log("worker1") for task_id in task_ids):
        assert time.monotonic() < deadline, (
            f"worker host 1 took none of {len(task_ids)} tasks; its log ends:\n"
            + "\n".join(cluster.log("worker1").splitlines()[-30:])
        )
        time.sleep(1)
        task_ids.append(
            _create(cluster, "api2", prompt=f"Through the outage {len(task_ids)}", model="demo")
        )

    worker.cut_route(redis_address)
    try:
        time.sleep(CUT_SECONDS)  # the outage itself, not a wait for something
    finally:
        worker.restore_route(redis_address)
    finished = [
        wait_until(lambda t=task_id: _finished(cluster, t), FINISH_TIMEOUT_SECONDS, "the task")
        for task_id in task_ids
    ]

    assert [task.status.value for task in finished] == ["COMPLETED"] * len(task_ids)
    for task_id in task_ids:
        statuses = [event.status for event in logged_events(cluster.database_url, task_id)]
        assert statuses.count("COMPLETED") == 1, statuses


def test_api_host_1_taken_away_while_followed_the_client_resumes_on_api_host_2_losing_nothing(
    cluster: Cluster,
) -> None:
    task_input = json.dumps({"prompt": "Keep following me", "model": "demo"})
    # One client command creates the task and follows it at once, so that the task is
    # still early in its run when the API host goes.
    follower = cluster.start_client(
        "submit-and-follow",
        cluster.api_url("api2"),
        task_input,
        cluster.api_url("api1"),
        cluster.api_url("api2"),
    )
    assert follower.stdout is not None
    task_id = json.loads(follower.stdout.readline())["created"]
    lines = []
    for raw in follower.stdout:
        lines.append(json.loads(raw))
        if (lines[-1].get("update") or {}).get("delta"):
            break  # text is flowing through API host 1
    assert read_task(cluster.database_url, task_id).status.value == "PROCESSING"

    cluster.host("api1").take_away()
    lines += _read_lines(follower)

    _assert_complete_story(cluster, task_id, lines)
    vias = [line.get("via") or line.get("lost") for line in lines[:-1]]
    assert cluster.api_url("api1") in vias
    assert vias[-1] == cluster.api_url("api2")
    assert any(line.get("lost") == cluster.api_url("api1") for line in lines)


def test_worker_host_taken_away_mid_task_the_task_finishes_on_the_other_once(
    cluster: Cluster,
) -> None:
    task_id = _create(cluster, "api2", prompt="Outlive your worker", model="demo")
    wait_until(
        lambda: read_task(cluster.database_url, task_id).status.value == "PROCESSING",
        FINISH_TIMEOUT_SECONDS,
        "a worker to start the task",
    )
    running_on = _runner(cluster, task_id)
    other = "worker2" if running_on == "worker1" else "worker1"
    taken_away_at = time.monotonic()

    cluster.host(running_on).take_away()
    final = wait_until(
        lambda: _finished(cluster, task_id), FINISH_TIMEOUT_SECONDS, "the task to finish"
    )

    assert final.status.value == "COMPLETED"
    assert task_id in cluster.log(other)
    statuses = [event.status for event in logged_events(cluster.database_url, task_id)]
    assert statuses.count("COMPLETED") == 1, statuses
    assert final.attempts == 2
    print(f"finished {time.monotonic() - taken_away_at:.1f} s after its worker host went away")
