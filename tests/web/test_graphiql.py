"""GraphiQL, served from this server's own build: a subscription runs over the login
session's socket to COMPLETED, and the page asks no other host for anything."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.web.conftest import Visit, WebStack
from tests.web.pages import create_elsewhere

# True once GraphiQL's stored tab state names the operation %s.
NAMED_IN_TAB_STATE = (
    "() => (localStorage.getItem('graphiql:tabState') || '').includes('\"operationName\":\"%s\"')"
)
# Times the editor is cleared and typed into before the test gives up on it.
EDIT_TRIES = 3
SUBSCRIPTION = 'subscription Watch { taskStatus(id: "%s") { sequence status progress } }'


def test_a_graphiql_subscription_streams_to_completed(visit: Visit, web_stack: WebStack) -> None:
    task_id = create_elsewhere(web_stack, prompt="Watched in GraphiQL")
    page = visit.page
    page.goto("/graphql")
    editor = page.locator(".graphiql-query-editor .monaco-editor").first
    expect(editor).to_be_visible()

    # A person clears the editor and types; a keystroke that comes before Monaco takes
    # focus is lost, so they look and do it again until only their operation is there.
    for _ in range(EDIT_TRIES):
        editor.click()
        page.keyboard.press("ControlOrMeta+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(SUBSCRIPTION % task_id)
        shown = " ".join(editor.inner_text().split())
        if "taskStatus" in shown and "Create a task" not in shown:
            break
    expect(editor).not_to_contain_text("Create a task")
    # GraphiQL reads the operation's name from the text a moment after it changes (and
    # keeps it in its stored tab state); run before that, it sends the old tab's name.
    page.wait_for_function(NAMED_IN_TAB_STATE % "Watch")
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
