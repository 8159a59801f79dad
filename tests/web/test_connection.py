"""The connection state a page shows, and that a task page reaches the complete text
whatever the socket does: an API restart mid-stream, or WebSockets blocked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute, expect

from tests.fixtures.stack import START_TIMEOUT_SECONDS, Stack, spawn, wait_until
from tests.web.conftest import Visit, WebStack, log_in, open_visit, start_web_stack
from tests.web.pages import create_elsewhere, stored, task_text, wait_for_status

# Collects every state the badge shows, so a short-lived one is not missed.
RECORD_STATES = """() => {
    window.seenStates = [];
    const badge = document.querySelector('[role="status"][data-state]');
    const record = () => window.seenStates.push(badge.dataset.state);
    record();
    new MutationObserver(record).observe(badge, { attributes: true });
}"""


@pytest.fixture(scope="module")
def own_stack(make_stack: Callable[..., Stack], web_build: Path, browser: Browser) -> WebStack:
    """A stack of its own: these tests stop its API."""
    return start_web_stack(make_stack)


@pytest.fixture
def own_visit(browser: Browser, own_stack: WebStack) -> Iterator[Visit]:
    context, visit = open_visit(browser, own_stack.stack.api_url)
    log_in(visit, own_stack.key)
    yield visit
    context.close()
    assert visit.foreign_requests() == []


def restart_api(stack: Stack) -> None:
    """Kill the API process and start another on the same port, as a deploy would."""
    api = next(process for process in stack.processes if process.name == "api")
    api.kill()
    stack.processes.remove(api)
    port = str(urlsplit(stack.api_url).port)
    env = {**stack.env, "AITASKS_PORT": port}
    stack.processes.append(spawn("api", ["api"], env, stack.log_dir))

    def healthy() -> bool:
        try:
            return httpx.get(f"{stack.api_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, START_TIMEOUT_SECONDS, "the restarted API to answer /healthz")


def seen_states(page: Page) -> list[str]:
    states: list[str] = page.evaluate("window.seenStates")
    return states


def test_an_api_restart_mid_stream_reconnects_without_gap_or_double(
    own_visit: Visit, own_stack: WebStack
) -> None:
    page = own_visit.page
    task_id = create_elsewhere(own_stack, prompt="Keep talking through a restart")
    page.goto(f"/tasks/{task_id}")
    expect(page.get_by_role("status")).to_have_text("Live")
    page.evaluate(RECORD_STATES)
    wait_for_status(page, "PROCESSING")
    expect(task_text(page)).not_to_be_empty()

    restart_api(own_stack.stack)

    wait_for_status(page, "COMPLETED", timeout=90_000)
    expect(task_text(page)).to_have_text(str(stored(own_stack, task_id)["result"]))
    expect(page.get_by_role("status")).to_have_text("Live")
    assert "reconnecting" in seen_states(page)


def test_with_websockets_blocked_the_page_polls_to_the_final_state(
    own_visit: Visit, own_stack: WebStack
) -> None:
    page = own_visit.page

    def refuse(socket: WebSocketRoute) -> None:
        # Never connected to the server: a proxy that drops WebSockets.
        socket.close(code=1011, reason="blocked")

    page.route_web_socket("**/graphql", refuse)
    task_id = create_elsewhere(own_stack, prompt="Polled to the end")
    page.goto(f"/tasks/{task_id}")

    expect(page.get_by_role("status")).to_have_text("Polling")
    wait_for_status(page, "COMPLETED")
    expect(task_text(page)).to_have_text(str(stored(own_stack, task_id)["result"]))
