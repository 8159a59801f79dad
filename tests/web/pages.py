"""What a person reads off the dashboard's pages, for the browser tests."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

from tests.web.conftest import SEE_TIMEOUT_MS, WebStack

TASK_RESULT = "query R($id: ID!) { task(id: $id) { status result attempts } }"
CREATE = """
mutation C($input: CreateTaskInput!) {
  createTask(input: $input) { __typename ... on Task { id } }
}
"""


def task_status(page: Page) -> Locator:
    return page.locator("article.task h1 .status")


def task_text(page: Page) -> Locator:
    return page.get_by_test_id("task-text")


def progress(page: Page) -> Locator:
    return page.locator("article.task").get_by_role("progressbar")


def wait_for_status(page: Page, status: str, timeout: float = SEE_TIMEOUT_MS) -> None:
    expect(task_status(page)).to_have_text(status, timeout=timeout)


def create_elsewhere(web: WebStack, **task_input: object) -> str:
    """A task created by another client over HTTP; its id."""
    data = web.graphql(CREATE, {"input": task_input})
    created = data["createTask"]
    assert isinstance(created, dict) and created["__typename"] == "Task", created
    return str(created["id"])


def stored(web: WebStack, task_id: str) -> dict[str, object]:
    task = web.graphql(TASK_RESULT, {"id": task_id})["task"]
    assert isinstance(task, dict)
    return task


def open_new_task_form(page: Page) -> None:
    page.get_by_role("navigation").get_by_role("link", name="New task").click()
    page.get_by_role("heading", name="New task").wait_for()
