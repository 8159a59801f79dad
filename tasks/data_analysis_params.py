"""The params of a DATA_ANALYSIS task: how to read its file and which figures to
compute. Apart from `tasks.worker.bodies.data_analysis_steps` (which loads pandas), so
the API can check them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

# Each group-by is a full pass over the table; ten keeps one task's run time predictable.
MAX_GROUP_BYS = 10
# More keys than this multiplies the groups past what anyone reads as a table.
MAX_GROUP_KEYS = 5
# Top values are for a glance at a column, not a histogram.
MAX_TOP_VALUES = 50
Aggregation = Literal["count", "sum", "mean", "median", "min", "max", "std", "nunique"]
ColumnName = Annotated[str, Field(min_length=1)]


class _Params(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class GroupBy(_Params):
    """Group rows by `by` and aggregate columns; output columns are named `<column>_<agg>`."""

    by: list[ColumnName] = Field(min_length=1, max_length=MAX_GROUP_KEYS)
    aggregations: dict[ColumnName, Annotated[list[Aggregation], Field(min_length=1)]] = Field(
        min_length=1
    )

    @field_validator("by")
    @classmethod
    def _distinct_keys(cls, by: list[str]) -> list[str]:
        _require_distinct(by, "group-by columns")
        return by

    @field_validator("aggregations")
    @classmethod
    def _distinct_aggregations(
        cls, aggregations: dict[str, list[Aggregation]]
    ) -> dict[str, list[Aggregation]]:
        for column, names in aggregations.items():
            _require_distinct(names, f"aggregations of {column!r}")
        return aggregations


class DataParams(_Params):
    """How to read the file and which figures to compute."""

    format: Literal["csv", "json"] | None = None
    encoding: str = "utf-8"
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] | None = None
    group_by: list[GroupBy] = Field(default_factory=list, max_length=MAX_GROUP_BYS)
    top_values: int = Field(default=5, ge=0, le=MAX_TOP_VALUES)

    @field_validator("encoding")
    @classmethod
    def _known_text_encoding(cls, encoding: str) -> str:
        try:
            # Encoding "" still rejects unknown names and bytes-to-bytes codecs such as base64.
            "".encode(encoding)
        except LookupError:
            raise ValueError(
                f"{encoding!r} is not a known text encoding; try 'utf-8', 'latin-1' or 'cp1252'"
            ) from None
        return encoding

    @field_validator("delimiter")
    @classmethod
    def _usable_delimiter(cls, delimiter: str | None) -> str | None:
        if delimiter is not None and delimiter in '"\r\n':
            raise ValueError("the delimiter cannot be a quote or a line break")
        return delimiter


def _require_distinct(values: Sequence[str], what: str) -> None:
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise ValueError(f"{what} must not repeat; repeated: {', '.join(repeated)}")
