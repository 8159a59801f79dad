"""The main pages render, photographed: into AITASKS_SCREENSHOTS_DIR when set (`make
screenshots` puts them in docs/ for docs/web.md and the README), else a temporary one."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.web.conftest import Visit, WebStack
from tests.web.pages import create_elsewhere, task_text, wait_for_status

PNG_MAGIC = b"\x89PNG"
VIEWPORT = {"width": 1200, "height": 700}


def shoot(page: Page, path: Path) -> Path:
    page.screenshot(path=path)
    return path


def test_the_main_pages_render(visit: Visit, web_stack: WebStack, tmp_path: Path) -> None:
    out = Path(os.environ.get("AITASKS_SCREENSHOTS_DIR", tmp_path))
    page = visit.page
    page.set_viewport_size(VIEWPORT)
    create_elsewhere(web_stack, prompt="Summarise the quarterly sales report")
    create_elsewhere(web_stack, prompt="A model that is down", model="fail-500")
    streaming = create_elsewhere(web_stack, prompt="Write a short story about a lighthouse")
    shots: list[Path] = []

    page.goto("/")
    expect(page.locator(f'tr[data-task-id="{streaming}"] .status')).to_have_text("PROCESSING")
    shots.append(shoot(page, out / "web-dashboard.png"))

    page.goto(f"/tasks/{streaming}")
    wait_for_status(page, "PROCESSING")
    expect(task_text(page)).not_to_be_empty()
    shots.append(shoot(page, out / "web-task.png"))

    page.goto("/new")
    page.get_by_label("Prompt").fill("Explain back-pressure in one paragraph")
    shots.append(shoot(page, out / "web-new-task.png"))

    page.goto("/graphql")
    expect(page.locator(".graphiql-query-editor .monaco-editor").first).to_be_visible()
    shots.append(shoot(page, out / "web-graphiql.png"))

    for path in shots:
        assert path.read_bytes().startswith(PNG_MAGIC)
