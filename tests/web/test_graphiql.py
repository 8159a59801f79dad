"""GraphiQL, served from this server's own build: a subscription runs over the login
session's socket to COMPLETED, and the page asks no other host for anything."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.web.conftest import Visit, WebStack
from tests.web.pages import create_elsewhere

SUBSCRIPTION = 'subscription Watch { taskStatus(id: "%s") { sequence status progress } }'


def test_a_graphiql_subscription_streams_to_completed(visit: Visit, web_stack: WebStack) -> None:
    task_id = create_elsewhere(web_stack, prompt="Watched in GraphiQL")
    page = visit.page
    page.goto("/graphql")
    editor = page.locator(".graphiql-query-editor .monaco-editor").first
    expect(editor).to_be_visible()

    editor.click()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(SUBSCRIPTION % task_id)
    page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()

    response = page.locator(".graphiql-response")
    expect(response).to_contain_text('"status": "COMPLETED"')
    expect(response).to_contain_text('"progress": 1')


def test_graphiql_documents_the_schema_without_introspection(visit: Visit) -> None:
    page = visit.page
    page.goto("/graphql")
    page.get_by_role("button", name="Show Documentation Explorer").click()
    page.get_by_role("link", name="Mutation").click()

    expect(page.locator(".graphiql-doc-explorer")).to_contain_text("createTask")
