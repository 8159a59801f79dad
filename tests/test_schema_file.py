"""The committed schema.graphql is what the code serves."""

from pathlib import Path

from schema import schema

SCHEMA_FILE = Path(__file__).parent.parent / "schema.graphql"


def test_schema_graphql_is_up_to_date() -> None:
    exported = schema.as_str() + "\n"

    assert SCHEMA_FILE.read_text() == exported, "schema.graphql is stale: run `make schema`"
