"""The prepared paths do the work of the schema's extensions themselves; a schema with an
extension they do not know sends every operation through Strawberry, which runs it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from strawberry.extensions import SchemaExtension

from graphql_app.ws.graphql_ws import SharedSubscriptions
from schema import QueryLimits, build_schema
from schema.prepared import PreparedOperations, mirrors_extensions

TASK_QUERY = "query Task($id: ID!) { task(id: $id) { id status } }"
TASK_STATUS = "subscription Follow($id: ID!) { taskStatus(id: $id) { sequence status } }"


class Audit(SchemaExtension):
    """An extension a deployment might add: it must see every operation."""

    def on_operation(self) -> Iterator[None]:
        yield


@pytest.fixture(scope="module")
def limits() -> QueryLimits:
    return QueryLimits()


def test_the_schema_as_built_has_only_extensions_the_prepared_paths_mirror(
    limits: QueryLimits,
) -> None:
    for introspection in (True, False):
        built = build_schema(QueryLimits(introspection=introspection))
        assert mirrors_extensions(built)
        assert PreparedOperations(built, limits).get(TASK_QUERY, None) is not None
        assert SharedSubscriptions(built, limits).prepare(TASK_STATUS, None) is not None


def test_an_added_extension_sends_every_operation_to_strawberry(
    limits: QueryLimits, caplog: pytest.LogCaptureFixture
) -> None:
    built = build_schema(limits)
    built.extensions = [*built.extensions, Audit]

    assert not mirrors_extensions(built)
    assert PreparedOperations(built, limits).get(TASK_QUERY, None) is None
    assert SharedSubscriptions(built, limits).prepare(TASK_STATUS, None) is None
    assert "Audit" in caplog.text


def test_a_subclass_of_a_mirrored_extension_is_not_taken_for_it(limits: QueryLimits) -> None:
    from strawberry.extensions import ParserCache

    class CountingParserCache(ParserCache):
        pass

    built = build_schema(limits)
    built.extensions = [*built.extensions, CountingParserCache]

    assert PreparedOperations(built, limits).get(TASK_QUERY, None) is None
