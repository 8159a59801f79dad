"""The task list stays live: tasks created elsewhere appear, and rows move by themselves."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.web.conftest import Visit, WebStack
from tests.web.pages import create_elsewhere


def test_a_task_created_elsewhere_appears_and_completes(visit: Visit, web_stack: WebStack) -> None:
    page = visit.page
    expect(page.get_by_role("status")).to_have_text("Live")

    task_id = create_elsewhere(web_stack, prompt="made by another client")

    row = page.locator(f'tr[data-task-id="{task_id}"]')
    expect(row).to_contain_text("made by another client")
    expect(page.locator("tbody tr").first).to_have_attribute("data-task-id", task_id)
    expect(row.locator(".status")).to_have_text("COMPLETED")
    expect(row.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")


def test_the_status_filter_shows_only_that_status(visit: Visit, web_stack: WebStack) -> None:
    failed_id = create_elsewhere(web_stack, prompt="fail", model="fail-500")
    page = visit.page
    page.get_by_label("Status filter").select_option("FAILED")

    expect(page).to_have_url(f"{visit.base_url}/?status=FAILED")
    expect(page.locator(f'tr[data-task-id="{failed_id}"]')).to_be_visible()
    expect(page.locator("tbody .status").filter(has_not_text="FAILED")).to_have_count(0)
