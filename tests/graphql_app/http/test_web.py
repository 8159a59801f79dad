"""The web app's files as the API serves them: the dashboard under every client route,
hashed assets cached for good and precompressed, GraphiQL from this server only, and a
Content-Security-Policy with no inline script."""

from __future__ import annotations

import re

import httpx
import pytest

from graphql_app.http.web import WEB_DIST, WebApp
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.usefixtures("web_build")
# Where a page could load code from somewhere else.
FOREIGN_URL = re.compile(r"""(src|href)=["']?(https?:)?//""")


def test_the_dashboard_is_served_at_the_root_and_under_client_routes(stack: Stack) -> None:
    root = httpx.get(f"{stack.api_url}/")
    task_page = httpx.get(f"{stack.api_url}/tasks/123")

    assert root.status_code == 200 and task_page.status_code == 200
    assert '<div id="root">' in root.text
    assert task_page.text == root.text
    assert root.headers["cache-control"].startswith("max-age=0")


def test_pages_forbid_inline_script_and_load_nothing_from_elsewhere(stack: Stack) -> None:
    for path in ("/", "/graphql"):
        page = httpx.get(f"{stack.api_url}{path}", headers={"accept": "text/html"})
        policy = page.headers["content-security-policy"]

        script = next(part for part in policy.split("; ") if part.startswith("script-src"))
        assert script == "script-src 'self'"
        assert "<script>" not in page.text and not FOREIGN_URL.search(page.text)


def test_graphiql_is_the_built_page_not_a_cdn_one(stack: Stack) -> None:
    page = httpx.get(stack.graphql_url, headers={"accept": "text/html"})

    assert page.status_code == 200
    assert "aitasks: GraphiQL" in page.text
    assert re.search(r'src="/assets/graphiql-[\w-]+\.js"', page.text)


def test_hashed_assets_are_immutable_and_sent_compressed(stack: Stack) -> None:
    page = httpx.get(f"{stack.api_url}/").text
    script = re.search(r'src="(/assets/index-[\w-]+\.js)"', page)
    assert script
    url = f"{stack.api_url}{script[1]}"

    brotli = httpx.get(url, headers={"accept-encoding": "br"})
    gzipped = httpx.get(url, headers={"accept-encoding": "gzip"})
    plain = httpx.get(url, headers={"accept-encoding": "identity"})

    assert brotli.headers["content-encoding"] == "br"
    assert gzipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert "immutable" in plain.headers["cache-control"]
    assert "accept-encoding" in plain.headers["vary"].lower()
    # httpx undoes gzip by itself; Brotli (no decoder here) arrives as sent, smaller.
    assert gzipped.content == plain.content
    assert len(brotli.content) < len(plain.content) / 2


def test_a_missing_asset_is_a_404_not_the_dashboard(stack: Stack) -> None:
    response = httpx.get(f"{stack.api_url}/assets/nothing-here.js")

    assert response.status_code == 404


def test_the_api_routes_still_answer_beside_the_app(stack: Stack) -> None:
    assert httpx.get(f"{stack.api_url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{stack.api_url}/login").status_code == 200


def test_without_a_build_the_app_says_how_to_make_one(tmp_path: object) -> None:
    from pathlib import Path

    app = WebApp(Path(str(tmp_path)))
    response = app.graphiql()

    assert response.status_code == 503
    assert b"Node.js 20" in bytes(response.body)
    assert WEB_DIST.name == "web_dist"
