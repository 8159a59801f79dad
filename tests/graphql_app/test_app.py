"""The HTTP surface around GraphQL: GraphiQL in development, the health check."""

from __future__ import annotations

import httpx

from tests.fixtures.stack import Stack


def test_graphiql_is_served_to_a_browser_in_development(stack: Stack) -> None:
    response = httpx.get(stack.graphql_url, headers={"accept": "text/html"})

    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


def test_healthz_answers(stack: Stack) -> None:
    response = httpx.get(f"{stack.api_url}/healthz")

    assert response.json() == {"status": "ok"}
