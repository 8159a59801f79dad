"""The analysis steps of DATA_ANALYSIS tasks, checked against figures computed here in plain
Python from the same generated rows."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter
from typing import Any

import orjson
import pandas as pd
import pytest
from pydantic import ValidationError

from tasks.worker.bodies.data_analysis_steps import (
    MARKDOWN_MAX_GROUP_ROWS,
    DataInputError,
    DataLimits,
    DataParams,
    GroupBy,
    group_by,
    load_table,
    narrative_prompt,
    profile,
    summary_markdown,
)

LIMITS = DataLimits(max_rows=1_000, max_columns=20, max_groups=100, max_cell_chars=40)
REGIONS = ["North", "South", "East"]
ROW_COUNT = 36
Row = dict[str, Any]


def sales_rows() -> list[Row]:
    """36 sales; every 12th has no region and every 10th no units, so both have gaps."""
    return [
        {
            "region": None if n % 12 == 11 else REGIONS[n % 3],
            "product": f"p{n % 4}",
            "units": None if n % 10 == 9 else n % 7 + 1,
            "price": 1.25 * (n % 5) + 0.5,
        }
        for n in range(ROW_COUNT)
    ]


def csv_bytes(rows: list[Row]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(
        [{key: "" if value is None else value for key, value in row.items()} for row in rows]
    )
    return text.getvalue().encode()


def load(
    data: bytes,
    file_name: str = "data.csv",
    limits: DataLimits = LIMITS,
    **params: Any,
) -> pd.DataFrame:
    return load_table(
        data,
        file_name=file_name,
        content_type="application/octet-stream",
        params=DataParams(**params),
        limits=limits,
    )


def column(figures: dict[str, Any], name: str) -> dict[str, Any]:
    return next(entry for entry in figures["columns"] if entry["name"] == name)


def present(rows: list[Row], name: str) -> list[Any]:
    return [row[name] for row in rows if row[name] is not None]


def by_region(rows: list[Row]) -> dict[str | None, list[Row]]:
    groups: dict[str | None, list[Row]] = {}
    for row in rows:
        groups.setdefault(row["region"], []).append(row)
    return groups


def assert_plain_json(value: Any) -> None:
    """Only JSON types, no NaN or infinity, nothing numpy or pandas."""
    json.dumps(value, allow_nan=False)
    orjson.dumps(value)
    if isinstance(value, dict):
        for item in value.values():
            assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain_json(item)
    else:
        assert value is None or type(value) in (str, int, float, bool), repr(value)


REGION_SPEC = GroupBy(
    by=["region"],
    aggregations={"units": ["sum", "mean", "count"], "price": ["median", "max", "std"]},
)


def expected_region_rows(rows: list[Row]) -> list[Row]:
    groups = by_region(rows)
    # Named keys sorted, the group with no region last.
    keys = [*sorted(key for key in groups if key is not None), None]
    return [
        {
            "region": key,
            "units_sum": sum(present(groups[key], "units")),
            "units_mean": statistics.mean(present(groups[key], "units")),
            "units_count": len(present(groups[key], "units")),
            "price_median": statistics.median(present(groups[key], "price")),
            "price_max": max(present(groups[key], "price")),
            "price_std": statistics.stdev(present(groups[key], "price")),
        }
        for key in keys
    ]


# --- Profile -----------------------------------------------------------------------------


def test_profile_reports_rows_types_missing_and_distinct() -> None:
    rows = sales_rows()
    figures = profile(load(csv_bytes(rows)), DataParams(), LIMITS)

    assert figures["rows"] == ROW_COUNT
    assert [(entry["name"], entry["type"]) for entry in figures["columns"]] == [
        ("region", "text"),
        ("product", "text"),
        ("units", "integer"),
        ("price", "float"),
    ]
    for name in ("region", "product", "units", "price"):
        values = present(rows, name)
        assert column(figures, name)["missing"] == ROW_COUNT - len(values)
        assert column(figures, name)["distinct"] == len(set(values))


def test_profile_summarises_numeric_columns() -> None:
    rows = sales_rows()
    units = present(rows, "units")
    p25, median, p75 = statistics.quantiles(units, n=4, method="inclusive")

    summary = column(profile(load(csv_bytes(rows)), DataParams(), LIMITS), "units")["summary"]

    assert summary == {
        "count": len(units),
        "mean": pytest.approx(statistics.mean(units)),
        "std": pytest.approx(statistics.stdev(units)),
        "min": min(units),
        "p25": pytest.approx(p25),
        "median": pytest.approx(median),
        "p75": pytest.approx(p75),
        "max": max(units),
    }
    assert median == statistics.median(units)


def test_profile_has_no_summary_for_text_columns() -> None:
    figures = profile(load(csv_bytes(sales_rows())), DataParams(), LIMITS)

    assert column(figures, "region")["summary"] is None


def test_top_values_are_most_frequent_first_with_ties_in_value_order() -> None:
    rows = sales_rows()
    units = Counter(present(rows, "units"))
    expected = sorted(units.items(), key=lambda item: (-item[1], item[0]))[:3]

    figures = profile(load(csv_bytes(rows)), DataParams(top_values=3), LIMITS)

    assert column(figures, "units")["top"] == [
        {"value": value, "count": count} for value, count in expected
    ]
    # Every product appears 9 times: the tie is broken by value.
    assert column(figures, "product")["top"] == [{"value": f"p{n}", "count": 9} for n in range(3)]


def test_top_values_leave_out_missing_values() -> None:
    rows = sales_rows()
    regions = Counter(present(rows, "region"))

    figures = profile(load(csv_bytes(rows)), DataParams(top_values=50), LIMITS)

    assert column(figures, "region")["top"] == [
        {"value": value, "count": count}
        for value, count in sorted(regions.items(), key=lambda item: (-item[1], item[0]))
    ]


def test_profile_cuts_long_text_values_to_the_cell_limit() -> None:
    limits = DataLimits(max_rows=10, max_columns=5, max_groups=5, max_cell_chars=10)
    table = load(b"note\n" + b"x" * 30 + b"\n", limits=limits)

    (top,) = column(profile(table, DataParams(), limits), "note")["top"]

    assert top["value"] == "x" * 9 + "…"


def test_profile_is_plain_json_even_with_infinities_gaps_and_dates() -> None:
    data = b"ratio,empty,when,flag\ninf,,2024-01-05,true\n-inf,,2024-02-29T10:30:00,\n1.5,,,false\n"
    figures = profile(load(data), DataParams(), LIMITS)

    assert_plain_json(figures)
    assert column(figures, "ratio")["summary"]["mean"] is None
    assert column(figures, "when")["type"] == "datetime"
    assert column(figures, "when")["top"][0]["value"] == "2024-01-05T00:00:00"
    assert column(figures, "flag")["type"] == "boolean"
    assert column(figures, "empty")["missing"] == 3


# --- Group by ----------------------------------------------------------------------------


def test_group_by_computes_each_aggregation_per_group() -> None:
    rows = sales_rows()

    result = group_by(load(csv_bytes(rows)), REGION_SPEC, LIMITS)

    assert result.json["by"] == ["region"]
    assert result.json["groups"] == len(by_region(rows))
    assert result.json["truncated"] is False
    assert result.json["rows"] == [
        {name: pytest.approx(value) for name, value in row.items()}
        for row in expected_region_rows(rows)
    ]


def test_group_by_keeps_rows_with_a_missing_key_as_their_own_group() -> None:
    rows = sales_rows()
    keyless = [row for row in rows if row["region"] is None]

    result = group_by(load(csv_bytes(rows)), REGION_SPEC, LIMITS)

    last = result.json["rows"][-1]
    assert last["region"] is None
    assert last["units_sum"] == sum(present(keyless, "units"))


def test_group_by_over_two_keys_counts_every_combination() -> None:
    rows = sales_rows()
    spec = GroupBy(by=["region", "product"], aggregations={"price": ["sum"]})
    expected = Counter((row["region"], row["product"]) for row in rows)

    result = group_by(load(csv_bytes(rows)), spec, LIMITS)

    assert result.json["groups"] == len(expected)
    for row in result.json["rows"]:
        prices = [
            source["price"]
            for source in rows
            if (source["region"], source["product"]) == (row["region"], row["product"])
        ]
        assert row["price_sum"] == pytest.approx(sum(prices))


def test_group_by_csv_artifact_parses_back_to_the_same_figures() -> None:
    rows = sales_rows()

    result = group_by(load(csv_bytes(rows)), REGION_SPEC, LIMITS)

    parsed = list(csv.DictReader(io.StringIO(result.csv.decode("utf-8"))))
    assert len(parsed) == len(result.json["rows"])
    for from_csv, from_json in zip(parsed, result.json["rows"], strict=True):
        assert (from_csv["region"] or None) == from_json["region"]
        for name, value in from_json.items():
            if name != "region":
                assert float(from_csv[name]) == pytest.approx(value)


def test_group_by_past_the_group_limit_keeps_the_first_groups_and_says_so() -> None:
    limits = DataLimits(max_rows=1_000, max_columns=20, max_groups=2, max_cell_chars=40)

    result = group_by(load(csv_bytes(sales_rows())), REGION_SPEC, limits)

    assert [row["region"] for row in result.json["rows"]] == ["East", "North"]
    assert result.json["groups"] == 4
    assert result.json["truncated"] is True
    assert len(list(csv.DictReader(io.StringIO(result.csv.decode())))) == 2


def test_group_by_an_unknown_column_names_it_and_the_available_ones() -> None:
    spec = GroupBy(by=["country"], aggregations={"units": ["sum"]})

    with pytest.raises(DataInputError, match="country") as caught:
        group_by(load(csv_bytes(sales_rows())), spec, LIMITS)

    assert "region, product, units, price" in str(caught.value)


def test_sum_of_a_text_column_names_the_aggregation_and_the_column() -> None:
    spec = GroupBy(by=["region"], aggregations={"product": ["count", "sum"]})

    with pytest.raises(DataInputError, match=r"'sum'.*'product'"):
        group_by(load(csv_bytes(sales_rows())), spec, LIMITS)


def test_group_by_result_is_plain_json() -> None:
    spec = GroupBy(by=["region"], aggregations={"product": ["min", "nunique"], "units": ["std"]})

    result = group_by(load(csv_bytes(sales_rows())), spec, LIMITS)

    assert_plain_json(result.json)


# --- Loading -----------------------------------------------------------------------------


def test_json_records_give_the_same_figures_as_the_csv() -> None:
    rows = sales_rows()

    from_json = load(orjson.dumps(rows), file_name="sales.json")
    from_csv = load(csv_bytes(rows))

    params = DataParams()
    assert profile(from_json, params, LIMITS) == profile(from_csv, params, LIMITS)
    assert (
        group_by(from_json, REGION_SPEC, LIMITS).json
        == group_by(from_csv, REGION_SPEC, LIMITS).json
    )


def test_json_column_arrays_and_json_lines_are_tables_too() -> None:
    columns = load(b'{"city": ["Oslo", "Rome"], "people": [709000, 2873000]}', "x.json")
    lines = load(b'{"city": "Oslo", "people": 709000}\n{"city": "Rome"}\n', file_name="x.jsonl")

    assert columns["people"].tolist() == [709000, 2873000]
    assert lines["city"].tolist() == ["Oslo", "Rome"]
    assert lines["people"].isna().tolist() == [False, True]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[1, 2]", "Item 1 of the JSON array is not an object"),
        (b'{"a": 1}', "Column 'a' is not an array"),
        (b'[{"a": 1},', "not valid JSON"),
        (b"[]", "no columns"),
    ],
)
def test_json_that_is_not_a_table_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(DataInputError, match=message):
        load(data, file_name="data.json")


def test_csv_row_with_extra_fields_names_its_line() -> None:
    with pytest.raises(DataInputError, match="4 fields on line 4 but its header has 2"):
        load(b"city,people\nOslo,709000\nRome,2873000\nParis,2,102,650\n")


def test_extra_fields_on_the_first_row_are_refused_not_read_as_an_index() -> None:
    with pytest.raises(DataInputError, match="on line 2 "):
        load(b"city,people\nOslo,709,000\nRome,2873000\n")


def test_bytes_in_another_encoding_give_an_error_that_says_what_to_set() -> None:
    data = "city,people\nMünchen,1488000\nZürich,421000\n".encode("latin-1")

    with pytest.raises(DataInputError) as caught:
        load(data)

    message = str(caught.value)
    assert "utf-8" in message
    assert "line 2" in message
    assert "encoding" in message


def test_the_same_bytes_read_with_their_encoding_load() -> None:
    data = "city,people\nMünchen,1488000\nZürich,421000\n".encode("latin-1")

    table = load(data, encoding="latin-1")

    assert table["city"].tolist() == ["München", "Zürich"]


@pytest.mark.parametrize("data", [b"", b"  \n\n"])
def test_empty_file_is_refused(data: bytes) -> None:
    with pytest.raises(DataInputError, match="empty"):
        load(data)


def test_header_without_rows_is_refused() -> None:
    with pytest.raises(DataInputError, match="no data rows"):
        load(b"city,people\n")


def test_rows_up_to_the_limit_load_and_one_more_is_refused() -> None:
    limits = DataLimits(max_rows=10, max_columns=5, max_groups=5, max_cell_chars=40)
    header = b"n\n"

    assert len(load(header + b"1\n" * 10, limits=limits)) == 10
    with pytest.raises(DataInputError, match="more than 10 data rows"):
        load(header + b"1\n" * 11, limits=limits)


def test_a_huge_csv_is_refused_without_reading_past_the_row_limit() -> None:
    limits = DataLimits(max_rows=10, max_columns=5, max_groups=5, max_cell_chars=40)
    # Undecodable bytes far past the limit: reading them would fail with an encoding error.
    data = b"n\n" + b"1\n" * 500_000 + b"\xff" * 1_000_000

    with pytest.raises(DataInputError, match="more than 10 data rows"):
        load(data, limits=limits)


@pytest.mark.parametrize(
    "data",
    [b"a,b,c,d\n1,2,3,4\n", b'[{"a": 1, "b": 2, "c": 3, "d": 4}]'],
    ids=["csv", "json"],
)
def test_more_columns_than_the_limit_are_refused(data: bytes) -> None:
    limits = DataLimits(max_rows=10, max_columns=3, max_groups=5, max_cell_chars=40)

    with pytest.raises(DataInputError, match="4 columns; at most 3"):
        load(data, file_name="data", limits=limits)


def test_empty_and_repeated_column_names_are_renamed() -> None:
    table = load(b"city, ,city,city_2\nOslo,1,2,3\n")

    assert table.columns.tolist() == ["city", "column_2", "city_3", "city_2"]


def test_semicolon_delimiter_is_sniffed() -> None:
    table = load(b"city;comment\nOslo;cold, dark\nRome;warm, busy\n")

    assert table["comment"].tolist() == ["cold, dark", "warm, busy"]


def test_format_is_sniffed_when_name_and_content_type_say_nothing() -> None:
    table = load(b'  [{"city": "Oslo"}]', file_name="upload")

    assert table["city"].tolist() == ["Oslo"]


# --- Report and prompt -------------------------------------------------------------------


def test_markdown_summary_contains_the_figures() -> None:
    rows = sales_rows()
    table = load(csv_bytes(rows))
    group = group_by(table, REGION_SPEC, LIMITS).json

    report = summary_markdown(profile(table, DataParams(), LIMITS), [group])

    units = present(rows, "units")
    assert f"{ROW_COUNT} rows, 4 columns" in report
    assert f"| units | integer | 3 | 7 | {statistics.mean(units):.4f} | 1 | 7 |" in report
    north = by_region(rows)["North"]
    assert f"| North | {sum(present(north, 'units'))} |" in report


def test_markdown_escapes_cells_and_bounds_group_tables() -> None:
    count = MARKDOWN_MAX_GROUP_ROWS + 5
    data = b"key,value\n" + b"".join(b"k%02d,1\n" % n for n in range(count)) + b'"a|b\nc",2\n'
    table = load(data)
    group = group_by(table, GroupBy(by=["key"], aggregations={"value": ["sum"]}), LIMITS).json

    report = summary_markdown(profile(table, DataParams(), LIMITS), [group])

    assert "| k00 | 1 |" in report
    assert f"| k{MARKDOWN_MAX_GROUP_ROWS:02d} |" not in report
    assert "… and 6 more groups." in report
    assert "a\\|b c" in report


def test_narrative_prompt_holds_the_request_and_all_figures_when_they_fit() -> None:
    table = load(csv_bytes(sales_rows()))
    figures = profile(table, DataParams(), LIMITS)
    group = group_by(table, REGION_SPEC, LIMITS).json

    prompt = narrative_prompt("Which region sold most?", figures, [group], 100_000)

    assert "Which region sold most?" in prompt
    assert "only on the figures" in prompt
    embedded = json.loads(prompt.split("Figures (JSON):\n", 1)[1])
    assert embedded["columns"] == figures["columns"]
    assert embedded["groupBy"] == [group]


@pytest.mark.parametrize("room", [-1, 1_000, 700, 500])
def test_narrative_prompt_shrinks_the_figures_to_fit(room: int) -> None:
    table = load(csv_bytes(sales_rows()))
    figures = profile(table, DataParams(), LIMITS)
    group = group_by(table, GroupBy(by=["units"], aggregations={"price": ["mean"]}), LIMITS).json
    # -1: one character less than the whole prompt needs.
    max_chars = (
        room if room > 0 else len(narrative_prompt("Summarise.", figures, [group], 10**6)) - 1
    )

    prompt = narrative_prompt("Summarise.", figures, [group], max_chars)

    assert len(prompt) <= max_chars
    embedded = json.loads(prompt.split("Figures (JSON):\n", 1)[1])
    assert embedded["rows"] == ROW_COUNT
    # Top values are the first figures to go.
    assert all("top" not in entry for entry in embedded["columns"])
    assert embedded["groupBy"][0]["groups"] == group["groups"]


def test_narrative_prompt_with_no_room_for_the_request_is_refused() -> None:
    figures = profile(load(csv_bytes(sales_rows())), DataParams(), LIMITS)

    with pytest.raises(DataInputError, match="too long"):
        narrative_prompt("x" * 2_000, figures, [], 1_000)


# --- Parameters --------------------------------------------------------------------------


def test_params_accept_camel_case_json_names() -> None:
    params = DataParams.model_validate(
        {
            "topValues": 3,
            "groupBy": [{"by": ["region"], "aggregations": {"units": ["sum"]}}],
        }
    )

    assert params.top_values == 3
    assert params.group_by[0].aggregations == {"units": ["sum"]}


@pytest.mark.parametrize(
    "raw",
    [
        {"sheet": "Sheet1"},
        {"encoding": "utf-9"},
        {"encoding": "base64"},
        {"delimiter": ";;"},
        {"topValues": 51},
        {"groupBy": [{"by": ["region"], "aggregations": {"units": ["average"]}}]},
        {"groupBy": [{"by": ["region"], "aggregations": {}}]},
        {"groupBy": [{"by": [], "aggregations": {"units": ["sum"]}}]},
        {"groupBy": [{"by": ["region", "region"], "aggregations": {"units": ["sum"]}}]},
    ],
    ids=[
        "unknown field",
        "unknown encoding",
        "not a text encoding",
        "long delimiter",
        "too many top values",
        "unknown aggregation",
        "no aggregation",
        "no key",
        "repeated key",
    ],
)
def test_invalid_params_are_a_validation_error(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DataParams.model_validate(raw)


def test_limits_below_one_fail_fast() -> None:
    with pytest.raises(ValueError, match="max_groups"):
        DataLimits(max_rows=10, max_columns=10, max_groups=0, max_cell_chars=10)


def test_an_encoding_that_cannot_decode_the_file_is_a_clear_error() -> None:
    params = DataParams(encoding="utf-16")

    with pytest.raises(DataInputError, match="Set the encoding"):
        load_table(
            b"a,b\n1,2\n3\n",
            file_name="x.csv",
            content_type="text/csv",
            params=params,
            limits=LIMITS,
        )
