"""The task page's controls: cancel a running task, retry a failed one."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.web.conftest import Visit, WebStack
from tests.web.pages import create_elsewhere, task_text, wait_for_status


def test_cancelling_a_running_task_ends_it_cancelled(visit: Visit, web_stack: WebStack) -> None:
    task_id = create_elsewhere(web_stack, prompt="A long story")
    page = visit.page
    page.goto(f"/tasks/{task_id}")
    wait_for_status(page, "PROCESSING")
    expect(task_text(page)).not_to_be_empty()

    page.get_by_role("button", name="Cancel").click()

    wait_for_status(page, "CANCELLED")
    expect(page.get_by_role("button", name="Retry")).to_be_enabled()


def test_retrying_a_failed_task_runs_it_again(visit: Visit, web_stack: WebStack) -> None:
    task_id = create_elsewhere(web_stack, prompt="fail", model="fail-500")
    page = visit.page
    page.goto(f"/tasks/{task_id}")
    wait_for_status(page, "FAILED")
    attempts = int(page.get_by_test_id("attempts").inner_text())

    page.get_by_role("button", name="Retry").click()

    expect(page.get_by_test_id("attempts")).not_to_have_text(str(attempts))
    wait_for_status(page, "FAILED")
    assert int(page.get_by_test_id("attempts").inner_text()) > attempts
    expect(page.locator("ol.errors li")).to_have_count(
        int(page.get_by_test_id("attempts").inner_text())
    )
