"""Logging in and out of the dashboard with an API key."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.web.conftest import Visit, WebStack, open_visit


def test_logging_in_opens_the_dashboard_live(visit: Visit) -> None:
    expect(visit.page.get_by_role("status")).to_have_text("Live")
    expect(visit.page).to_have_url(f"{visit.base_url}/")


def test_logging_out_ends_the_session(visit: Visit) -> None:
    visit.page.get_by_role("button", name="Log out").click()
    visit.page.get_by_label("API key").wait_for()
    visit.page.goto("/")

    expect(visit.page.get_by_role("alert")).to_contain_text("You are not logged in")


def test_a_wrong_key_is_refused_on_the_login_page(browser: Browser, web_stack: WebStack) -> None:
    context, opened = open_visit(browser, web_stack.stack.api_url)
    opened.page.goto("/login")
    opened.page.get_by_label("API key").fill("ait_not-a-key")
    opened.page.get_by_role("button", name="Log in").click()

    expect(opened.page.get_by_role("alert")).to_have_text("That key is unknown or revoked.")
    context.close()
