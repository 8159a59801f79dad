"""DATA_ANALYSIS end to end: a CSV with a known answer, a real worker, the figures in
`output`, the Markdown summary in `result`, and the group-by tables as artifacts."""

from __future__ import annotations

import csv
import io
import statistics
from typing import Any

import pytest

from tests.fixtures.files import download, inline
from tests.fixtures.graphql import create_task, poll_until_finished
from tests.fixtures.openai_server import OpenAICompatibleServer, prompt_of
from tests.fixtures.stack import Stack

REGIONS = ("north", "south", "east")
SALES = [
    {"region": REGIONS[index % 3], "units": index * 7 % 19, "price": round(1.5 + index * 0.25, 2)}
    for index in range(30)
]


def sales_csv(rows: list[dict[str, Any]] = SALES) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["region", "units", "price"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def run_analysis(stack: Stack, data: bytes, **extra: Any) -> dict[str, Any]:
    task = create_task(stack, kind="DATA_ANALYSIS", files=[inline("sales.csv", data)], **extra)
    assert task["__typename"] == "Task", task
    return poll_until_finished(stack, task["id"])


def column(output: dict[str, Any], name: str) -> dict[str, Any]:
    return next(entry for entry in output["profile"]["columns"] if entry["name"] == name)


def test_the_profile_matches_figures_computed_here(stack: Stack) -> None:
    final = run_analysis(stack, sales_csv())

    assert final["status"] == "COMPLETED", final["error"]
    output = final["output"]
    assert output["profile"]["rows"] == len(SALES)
    units = [row["units"] for row in SALES]
    summary = column(output, "units")["summary"]
    assert column(output, "units")["type"] == "integer"
    assert summary["mean"] == pytest.approx(statistics.mean(units))
    assert summary["median"] == pytest.approx(statistics.median(units))
    assert (summary["min"], summary["max"]) == (min(units), max(units))
    region = column(output, "region")
    assert region["distinct"] == len(REGIONS)
    assert {entry["value"]: entry["count"] for entry in region["top"]} == dict.fromkeys(REGIONS, 10)
    assert f"{len(SALES)} rows" in final["result"]


def test_group_by_figures_match_and_download_as_csv(stack: Stack) -> None:
    group_by = [{"by": ["region"], "aggregations": {"units": ["sum", "mean"], "price": ["max"]}}]

    final = run_analysis(stack, sales_csv(), params={"groupBy": group_by})

    assert final["status"] == "COMPLETED", final["error"]
    [groups] = final["output"]["groups"]
    by_region = {row["region"]: row for row in groups["rows"]}
    # Columns in the order they were asked for.
    assert list(groups["rows"][0]) == ["region", "units_sum", "units_mean", "price_max"]
    for region in REGIONS:
        rows = [row for row in SALES if row["region"] == region]
        assert by_region[region]["units_sum"] == sum(row["units"] for row in rows)
        assert by_region[region]["units_mean"] == pytest.approx(
            statistics.mean(row["units"] for row in rows)
        )
        assert by_region[region]["price_max"] == max(row["price"] for row in rows)
    [artifact] = final["artifacts"]
    assert artifact["contentType"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(download(artifact["url"]).text)))
    assert {row["region"]: float(row["units_sum"]) for row in table} == {
        region: by_region[region]["units_sum"] for region in REGIONS
    }
    assert "units_sum" in final["result"]


def test_a_malformed_csv_fails_the_task_clearly(stack: Stack) -> None:
    data = sales_csv() + b"west,1,2.0,surplus\n"

    final = run_analysis(stack, data)

    assert final["status"] == "FAILED"
    assert "line 32" in final["error"], final["error"]
    assert final["attempts"] == 1


def test_an_unknown_group_by_column_fails_naming_it(stack: Stack) -> None:
    group_by = [{"by": ["country"], "aggregations": {"units": ["sum"]}}]

    final = run_analysis(stack, sales_csv(), params={"groupBy": group_by})

    assert final["status"] == "FAILED"
    assert "country" in final["error"]
    assert "region" in final["error"]


def test_a_narrative_is_written_from_the_figures_not_the_rows(
    stack: Stack, openai_server: OpenAICompatibleServer
) -> None:
    # One row more than the other tests, so the row count sent is this test's own.
    rows = [*SALES, {"region": "west", "units": 1, "price": 1.0}]

    final = run_analysis(stack, sales_csv(rows), prompt="Which region sells most?", model="echo")

    assert final["status"] == "COMPLETED", final["error"]
    sent = next(
        prompt_of(seen["body"]["messages"][-1])
        for seen in openai_server.recorded.requests
        if "Which region sells most?" in prompt_of(seen["body"]["messages"][-1])
    )
    assert '"rows":31' in sent.replace(" ", "")
    assert "units" in sent
    assert "Echo: " in final["result"]
    assert final["result"].index("Echo: ") > final["result"].index("31 rows")


def test_a_wrong_encoding_fails_clearly_and_the_right_one_reads_the_file(stack: Stack) -> None:
    data = "city,people\nZürich,421000\nMünchen,1512000\n".encode("latin-1")

    wrong = run_analysis(stack, data)
    right = run_analysis(stack, data, params={"encoding": "latin-1"})

    assert wrong["status"] == "FAILED"
    assert "utf-8" in wrong["error"] and "encoding" in wrong["error"], wrong["error"]
    assert right["status"] == "COMPLETED", right["error"]
    assert "München" in [entry["value"] for entry in column(right["output"], "city")["top"]]


def test_group_by_csv_cells_that_a_spreadsheet_would_run_are_escaped(stack: Stack) -> None:
    formulas = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "plain"]
    rows = [{"region": value, "units": index, "price": 1.0} for index, value in enumerate(formulas)]
    group_by = [{"by": ["region"], "aggregations": {"units": ["sum"]}}]

    final = run_analysis(stack, sales_csv(rows), params={"groupBy": group_by})

    assert final["status"] == "COMPLETED", final["error"]
    table = list(csv.DictReader(io.StringIO(download(final["artifacts"][0]["url"]).text)))
    cells = {row["region"] for row in table}
    assert cells == {"'" + value for value in formulas[:-1]} | {"plain"}
    # The numbers stay numbers, negative ones included.
    assert sorted(int(row["units_sum"]) for row in table) == list(range(len(formulas)))
