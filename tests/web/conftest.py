"""A real Chromium (Debian's /usr/bin/chromium, driven by Playwright for Python) against
a real stack with keys required; each test logs in through the login page, as a person
does, and no test may see a request to any host but the server's."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from tests.fixtures.keys import new_key
from tests.fixtures.stack import Stack
from tests.fixtures.web import required_or_skip

CHROMIUM = Path(os.environ.get("AITASKS_TEST_CHROMIUM", "/usr/bin/chromium"))
# No sandbox: CI runs as root in a container, where Chromium's sandbox cannot start.
# The rest keep the browser from calling Google's services during a test.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# What a person waits for at most: a demo task runs for DEMO_SECONDS.
SEE_TIMEOUT_MS = 30_000
expect.set_options(timeout=SEE_TIMEOUT_MS)
# Long enough to watch the text arrive in pieces, and to cancel it halfway.
DEMO_SECONDS = "6"


@dataclass
class WebStack:
    stack: Stack
    key: str

    def graphql(self, query: str, variables: dict[str, object] | None = None) -> dict[str, object]:
        """An operation sent by another client, over HTTP with the key."""
        response = httpx.post(
            self.stack.graphql_url,
            json={"query": query, "variables": variables or {}},
            headers={"authorization": f"Bearer {self.key}"},
            timeout=15,
        )
        body: dict[str, object] = response.json()
        assert "errors" not in body, body
        return body["data"]  # type: ignore[return-value]


@dataclass
class Visit:
    """A page in a fresh browser context, with every URL it asked for."""

    page: Page
    base_url: str
    requested: list[str] = field(default_factory=list)

    def foreign_requests(self) -> list[str]:
        here = urlsplit(self.base_url).netloc
        return [
            url
            for url in self.requested
            if urlsplit(url).scheme in ("http", "https", "ws", "wss")
            and urlsplit(url).netloc != here
        ]


@pytest.fixture(scope="session")
def playwright(make_stack: Callable[..., Stack], web_build: Path) -> Iterator[Playwright]:
    # After make_stack, so that its teardown (asyncio.run) comes after Playwright's loop
    # has stopped.
    if not CHROMIUM.exists():
        required_or_skip(f"Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield launched
    launched.close()


def start_web_stack(make_stack: Callable[..., Stack]) -> WebStack:
    # In a thread of its own: Playwright's sync API keeps an event loop running on this
    # one, and making a stack runs asyncio.run.
    with ThreadPoolExecutor(1) as thread:
        stack = thread.submit(
            make_stack,
            AITASKS_AUTH="on",
            AITASKS_AUTH_CACHE_SECONDS="0",
            AITASKS_DEMO_DURATION_SECONDS=DEMO_SECONDS,
        ).result()
    stack.start_worker()
    stack.start_api()
    return WebStack(stack, new_key(stack, "web"))


@pytest.fixture(scope="session")
def web_stack(make_stack: Callable[..., Stack], web_build: Path) -> WebStack:
    """The stack most browser tests share."""
    return start_web_stack(make_stack)


def open_visit(browser: Browser, base_url: str) -> tuple[BrowserContext, Visit]:
    context = browser.new_context(base_url=base_url)
    context.set_default_timeout(SEE_TIMEOUT_MS)
    visit = Visit(context.new_page(), base_url)
    context.on("request", lambda request: visit.requested.append(request.url))
    context.on("websocket", lambda socket: visit.requested.append(socket.url))
    visit.page.on("websocket", lambda socket: visit.requested.append(socket.url))
    return context, visit


def log_in(visit: Visit, key: str) -> None:
    """What a person does: open the login page, paste the key, press the button."""
    visit.page.goto("/login")
    visit.page.get_by_label("API key").fill(key)
    visit.page.get_by_role("button", name="Log in").click()
    visit.page.get_by_role("heading", name="Tasks").wait_for()


@pytest.fixture
def visit(browser: Browser, web_stack: WebStack) -> Iterator[Visit]:
    """A logged-in visit to the shared stack; it fails if it asked any other host."""
    context, opened = open_visit(browser, web_stack.stack.api_url)
    log_in(opened, web_stack.key)
    yield opened
    context.close()
    assert opened.foreign_requests() == []
