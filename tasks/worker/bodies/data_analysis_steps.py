"""Pure data analysis for DATA_ANALYSIS tasks: read a CSV or JSON table, profile it, group it,
and turn the figures into a Markdown report and a prompt for a narrative.

Nothing here does I/O beyond bytes in and values out, so the worker can run each step in a
thread and report progress between steps. Every value handed back is JSON-safe.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

import numpy as np
import orjson
import pandas as pd

from tasks.data_analysis_narrative import FIGURES_HEADING, NARRATIVE_INSTRUCTION, REQUEST_HEADING
from tasks.data_analysis_params import Aggregation, DataParams, GroupBy

# Enough text to guess the format and delimiter from, small enough to scan instantly.
SNIFF_BYTES = 64 * 1024
# Rows compared when guessing a delimiter: enough to see the table's shape.
SNIFF_ROWS = 100
# Delimiters worth guessing: comma, the European semicolon, tab and pipe.
SNIFF_DELIMITERS = ",;\t|"
# A report is read by a person: past this many rows a group table is a download, not a read.
MARKDOWN_MAX_GROUP_ROWS = 20
# A cut string ends with this, so a reader can tell it was cut.
ELLIPSIS = "…"

NUMERIC_AGGREGATIONS = frozenset({"sum", "mean", "median", "std"})
NUMERIC_TYPES = frozenset({"integer", "float"})
EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}
CONTENT_TYPE_FORMATS = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "csv",
    "application/json": "json",
    "text/json": "json",
    "application/x-ndjson": "json",
    "application/jsonl": "json",
}
# An ISO 8601 date, optionally with a time and offset; only such text columns become datetimes,
# so codes such as "2020" or "12/03" stay text.
ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
PANDAS_FIELD_COUNT = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
NOT_A_TABLE = (
    "The JSON must be an array of objects (one per row), an object mapping each column name "
    "to an array of values, or JSON Lines (one object per line)."
)


class DataInputError(Exception):
    """The data or the requested analysis cannot be done; str(error) is a clear sentence shown
    to the user as the task's error."""


@dataclass(frozen=True)
class DataLimits:
    """Bounds on one task's data, so a single upload cannot exhaust a worker."""

    max_rows: int
    max_columns: int
    max_groups: int
    max_cell_chars: int

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 1:
                raise ValueError(f"DataLimits.{name} must be at least 1, not {value}.")


@dataclass(frozen=True)
class GroupResult:
    """One group-by: `json` for the task result, `csv` (UTF-8) as a downloadable artifact."""

    json: dict[str, Any]
    csv: bytes


# --- Loading -----------------------------------------------------------------------------


def load_table(
    data: bytes, *, file_name: str, content_type: str, params: DataParams, limits: DataLimits
) -> pd.DataFrame:
    """Read a CSV or JSON file into a table with nullable dtypes (missing values are pd.NA).

    The format is `params.format`, else the file name's extension, else the content type,
    else JSON when the text starts with `[` or `{`. CSV uses `params.delimiter`, else tab for
    .tsv, else a delimiter sniffed among `, ; tab |` (comma when in doubt); at most
    `max_rows + 1` rows are read. JSON may be an array of objects, an object of column arrays,
    or JSON Lines. Column names are stripped; empty names become `column_<position>` and repeats
    get `_2`, `_3`... Text columns holding only ISO 8601 dates become datetimes.

    Raises DataInputError with a sentence for the user when the file cannot be analysed.
    """
    if not data or data.isspace():
        raise DataInputError("The file is empty.")
    try:
        if _format(data, file_name, content_type, params) == "csv":
            delimiter = _delimiter(data, file_name, content_type, params)
            table = _read_csv(data, delimiter, params, limits)
        else:
            table = _read_json(data, params, limits)
    except UnicodeError:
        # Codecs that cannot decode this file at all (utf-16 without a byte-order mark,
        # idna) fail before any bad byte is found.
        raise _decode_error(data, params.encoding) from None
    if table.empty:
        raise DataInputError("The file has column names but no data rows.")
    return _with_datetimes(table)


def _format(data: bytes, file_name: str, content_type: str, params: DataParams) -> str:
    if params.format is not None:
        return params.format
    extension = PurePath(file_name).suffix.lower()
    media_type = content_type.split(";")[0].strip().lower()
    # The name is what the user chose; a content type is often a browser's guess.
    known = EXTENSION_FORMATS.get(extension) or CONTENT_TYPE_FORMATS.get(media_type)
    if known is not None:
        return known
    start = _text_sample(data, params.encoding).lstrip()
    return "json" if start[:1] in ("[", "{") else "csv"


def _delimiter(data: bytes, file_name: str, content_type: str, params: DataParams) -> str:
    if params.delimiter is not None:
        return params.delimiter
    if file_name.lower().endswith(".tsv") or "tab-separated" in content_type.lower():
        return "\t"
    return _sniff_delimiter(_text_sample(data, params.encoding))


def _sniff_delimiter(sample: str) -> str:
    """The candidate that splits the header into 2+ fields and the most sampled rows into as
    many; comma wins ties and is the default.

    csv.Sniffer is not used: its regular expressions take minutes on some quoted samples.
    """
    best, best_score = ",", 0
    for candidate in SNIFF_DELIMITERS:
        rows = _sample_rows(sample, candidate)
        if len(rows) == 0 or len(rows[0]) < 2:
            continue
        score = sum(len(row) == len(rows[0]) for row in rows)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _sample_rows(sample: str, delimiter: str) -> list[list[str]]:
    try:
        rows = (row for row in csv.reader(io.StringIO(sample), delimiter=delimiter) if row)
        return list(itertools.islice(rows, SNIFF_ROWS))
    except csv.Error:
        return []


def _text_sample(data: bytes, encoding: str) -> str:
    # For guessing only: bad bytes are replaced here and reported when the file is read.
    decoder = codecs.getincrementaldecoder(_codec(encoding))(errors="replace")
    return str(decoder.decode(data[:SNIFF_BYTES], final=False))


def _codec(encoding: str) -> str:
    # utf-8-sig reads UTF-8 with or without the byte-order mark spreadsheets like to write,
    # which would otherwise end up in the first column's name.
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def _decode_error(data: bytes, encoding: str) -> DataInputError:
    try:
        # Decoding stops at the first bad byte, which the reader has already reached, so this
        # reads no further into the file than the reader did.
        data.decode(_codec(encoding))
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        return DataInputError(
            f"The file is not valid {encoding} text: byte 0x{data[error.start]:02X} on line "
            f"{line} (byte offset {error.start}) cannot be decoded. Set the encoding "
            'parameter to the file\'s encoding, for example "latin-1" or "cp1252".'
        )
    except UnicodeError as error:
        # Codecs such as utf-16 (without a byte-order mark) or idna fail this way.
        return DataInputError(
            f"The file could not be decoded as {encoding} text ({error}). Set the encoding "
            "parameter to the file's encoding."
        )
    return DataInputError(
        f"The file could not be decoded as {encoding} text. Set the encoding parameter to "
        "the file's encoding."
    )


def _open_text(data: bytes, encoding: str) -> io.TextIOWrapper:
    # Decoding as we go means a huge file is only read as far as the row limit.
    return io.TextIOWrapper(io.BytesIO(data), encoding=_codec(encoding), newline="")


def _read_csv(data: bytes, delimiter: str, params: DataParams, limits: DataLimits) -> pd.DataFrame:
    try:
        header = _read_header(_open_text(data, params.encoding), delimiter, limits)
        table = pd.read_csv(
            _open_text(data, params.encoding),
            sep=delimiter,
            header=0,
            names=_unique_names(header),
            # Every field is a column, never the index (_read_header refuses a surplus field).
            index_col=False,
            on_bad_lines="error",
            # One row past the limit is enough to refuse the file.
            nrows=limits.max_rows + 1,
            dtype_backend="numpy_nullable",
        )
    except UnicodeError:
        raise _decode_error(data, params.encoding) from None
    except pd.errors.ParserError as error:
        raise _parser_error(error, delimiter) from None
    _check_rows(len(table), limits)
    return table


def _read_header(text: io.TextIOWrapper, delimiter: str, limits: DataLimits) -> list[str]:
    reader = csv.reader(text, delimiter=delimiter)
    try:
        records = (record for record in reader if record)
        header = next(records, None)
        first_row = next(records, None)
    except csv.Error as error:
        raise DataInputError(f"The CSV header could not be read: {error}.") from None
    if header is None:
        raise DataInputError("The file has no columns.")
    _check_columns(len(header), limits)
    # pandas reads a first row with one field too many as an index rather than failing.
    if first_row is not None and len(first_row) > len(header):
        raise _field_count_error(reader.line_num, len(first_row), len(header), delimiter)
    return header


def _parser_error(error: pd.errors.ParserError, delimiter: str) -> DataInputError:
    match = PANDAS_FIELD_COUNT.search(str(error))
    if match is None:
        detail = str(error).removeprefix("Error tokenizing data. C error: ").strip().rstrip(".")
        return DataInputError(f"The CSV file could not be parsed: {detail}.")
    expected, line, saw = (int(group) for group in match.groups())
    return _field_count_error(line, saw, expected, delimiter)


def _field_count_error(line: int, saw: int, expected: int, delimiter: str) -> DataInputError:
    return DataInputError(
        f"The CSV file has {saw} fields on line {line} but its header has {expected}; "
        f"quote values that contain the delimiter {delimiter!r}."
    )


def _unique_names(raw_names: Sequence[object]) -> list[str]:
    names = [str(name).strip() or f"column_{place}" for place, name in enumerate(raw_names, 1)]
    originals, used = set(names), set[str]()
    for place, name in enumerate(names):
        candidate, suffix = name, 2
        # A new name must not take one that a later column already has.
        while candidate in used or (candidate != name and candidate in originals):
            candidate, suffix = f"{name}_{suffix}", suffix + 1
        names[place] = candidate
        used.add(candidate)
    return names


def _check_rows(count: int, limits: DataLimits) -> None:
    if count > limits.max_rows:
        raise DataInputError(
            f"The file has more than {limits.max_rows:,} data rows; "
            f"at most {limits.max_rows:,} can be analysed."
        )


def _check_columns(count: int, limits: DataLimits) -> None:
    if count > limits.max_columns:
        raise DataInputError(
            f"The file has {count:,} columns; at most {limits.max_columns:,} can be analysed."
        )


def _read_json(data: bytes, params: DataParams, limits: DataLimits) -> pd.DataFrame:
    try:
        # JSON is parsed whole, so unlike CSV it is decoded whole; the upload limit bounds it.
        text = data.decode(_codec(params.encoding))
    except UnicodeError:
        raise _decode_error(data, params.encoding) from None
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        if not _looks_like_json_lines(text):
            raise DataInputError(
                f"The file is not valid JSON: {error.msg} at line {error.lineno}, "
                f"column {error.colno}."
            ) from None
        return _frame_from_records(_json_lines(text, limits), limits)
    if isinstance(document, list):
        return _frame_from_records(document, limits)
    if isinstance(document, dict):
        return _frame_from_columns(document, limits)
    raise DataInputError(NOT_A_TABLE)


def _looks_like_json_lines(text: str) -> bool:
    first_line = next((line for line in io.StringIO(text) if line.strip()), "")
    try:
        return isinstance(orjson.loads(first_line), dict)
    except orjson.JSONDecodeError:
        return False


def _json_lines(text: str, limits: DataLimits) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(io.StringIO(text), 1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise DataInputError(f"The JSON on line {number} is not valid: {error.msg}.") from None
        if not isinstance(record, dict):
            raise DataInputError(f"The JSON on line {number} is not an object. {NOT_A_TABLE}")
        records.append(record)
        # One row past the limit is enough to refuse the file.
        if len(records) > limits.max_rows:
            break
    return records


def _frame_from_records(records: list[Any], limits: DataLimits) -> pd.DataFrame:
    _check_rows(len(records), limits)
    names: dict[str, None] = {}
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise DataInputError(f"Item {number} of the JSON array is not an object. {NOT_A_TABLE}")
        names.update(dict.fromkeys(record))
        _check_columns(len(names), limits)
    if not names:
        raise DataInputError("The JSON has no columns: no object has any field.")
    return _normalise(pd.DataFrame(records, columns=list(names)))


def _frame_from_columns(columns: dict[str, Any], limits: DataLimits) -> pd.DataFrame:
    if not columns:
        raise DataInputError("The JSON has no columns: the object is empty.")
    _check_columns(len(columns), limits)
    lengths = set()
    for name, values in columns.items():
        if not isinstance(values, list):
            raise DataInputError(f"Column {name!r} is not an array. {NOT_A_TABLE}")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise DataInputError("The JSON columns have different lengths; each needs one value a row.")
    _check_rows(lengths.pop(), limits)
    return _normalise(pd.DataFrame(columns))


def _normalise(table: pd.DataFrame) -> pd.DataFrame:
    """Give JSON-read tables the same names and nullable dtypes as CSV-read ones."""
    table.columns = pd.Index(_unique_names(list(table.columns)))
    table = table.convert_dtypes()
    for name in table.columns:
        if table[name].dtype == object:
            # Mixed or nested values: keep them as their JSON text so they can be counted.
            table[name] = table[name].map(_json_text).astype("string")
    return table


def _json_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return orjson.dumps(value).decode()


def _with_datetimes(table: pd.DataFrame) -> pd.DataFrame:
    for name in table.columns:
        if isinstance(table[name].dtype, pd.StringDtype):
            table[name] = _as_datetime(table[name])
    return table


def _as_datetime(column: pd.Series) -> pd.Series:
    present = column.dropna()
    if present.empty or not present.str.fullmatch(ISO_DATETIME).all():
        return column
    try:
        parsed = pd.to_datetime(column, format="ISO8601", errors="coerce")
    except ValueError:
        # Mixed time zone offsets have no single dtype; such a column stays text.
        return column
    # A value that matched the pattern but is no real date (2021-02-30) keeps the column text.
    return parsed if parsed.isna().sum() == column.isna().sum() else column


# --- Profile -----------------------------------------------------------------------------


def profile(table: pd.DataFrame, params: DataParams, limits: DataLimits) -> dict[str, Any]:
    """Describe each column: type, missing and distinct counts, numeric summary, top values.

    `top` lists the `params.top_values` most frequent values, most frequent first and ties in
    ascending value order. Missing values are counted in `missing`, never in `top`.
    """
    return {
        "rows": len(table),
        "columns": [_column_profile(table[name], params, limits) for name in table.columns],
    }


def _column_profile(column: pd.Series, params: DataParams, limits: DataLimits) -> dict[str, Any]:
    column_type = _column_type(column)
    return {
        "name": str(column.name),
        "type": column_type,
        "missing": int(column.isna().sum()),
        "distinct": int(column.nunique(dropna=True)),
        "summary": _numeric_summary(column) if column_type in NUMERIC_TYPES else None,
        "top": _top_values(column, params.top_values, limits.max_cell_chars),
    }


def _column_type(column: pd.Series) -> str:
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "text" if pd.api.types.is_string_dtype(dtype) else "other"


def _numeric_summary(column: pd.Series) -> dict[str, Any]:
    present = column.dropna()
    # Infinities make numpy warn while computing NaN (inf - inf); NaN becomes None anyway.
    # errstate is context-local, so other threads of the worker keep their settings.
    with np.errstate(invalid="ignore", over="ignore"):
        quartiles = present.quantile([0.25, 0.5, 0.75]).tolist()
        figures = {
            "count": len(present),
            "mean": present.mean(),
            "std": present.std(),
            "min": present.min(),
            "p25": quartiles[0],
            "median": quartiles[1],
            "p75": quartiles[2],
            "max": present.max(),
        }
    return {name: _json_scalar(value) for name, value in figures.items()}


def _top_values(column: pd.Series, count: int, max_chars: int) -> list[dict[str, Any]]:
    if count == 0:
        return []
    # Sorting by value first, then stably by count, breaks ties in value order.
    counts = column.value_counts(dropna=True, sort=False).sort_index(kind="stable")
    counts = counts.sort_values(ascending=False, kind="stable").head(count)
    return [
        {"value": _json_scalar(value, max_chars), "count": int(times)}
        for value, times in counts.items()
    ]


def _json_scalar(value: object, max_chars: int | None = None) -> Any:
    """Turn a pandas or numpy value into JSON: None for missing and non-finite, text cut."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    text = value.isoformat() if isinstance(value, datetime | date) else str(value)
    return _cut(text, max_chars)


def _cut(text: str, max_chars: int | None) -> str:
    if max_chars is None or len(text) <= max_chars:
        return text
    return text[: max_chars - 1] + ELLIPSIS


# --- Group by ----------------------------------------------------------------------------


def group_by(table: pd.DataFrame, spec: GroupBy, limits: DataLimits) -> GroupResult:
    """Group `table` by `spec.by` and compute the aggregations, one row per group.

    Rows with a missing key form their own group (the key is null in JSON, empty in CSV), sorted
    after the others. Groups are sorted by key; past `limits.max_groups` only the first are
    kept and `truncated` is true, while `groups` is still the total. `count` counts non-missing
    values; `sum`, `mean`, `median` and `std` need a numeric or boolean column.
    """
    _check_group_columns(table, spec)
    grouped = table.groupby(spec.by, dropna=False, sort=True)
    result = grouped.agg(**_named_aggregations(spec)).reset_index()
    kept = result.head(limits.max_groups)
    rows = [
        {key: _json_scalar(value, limits.max_cell_chars) for key, value in row.items()}
        for row in kept.to_dict(orient="records")
    ]
    summary = {
        "by": list(spec.by),
        "rows": rows,
        "groups": len(result),
        "truncated": len(kept) < len(result),
    }
    return GroupResult(json=summary, csv=_formula_safe(kept).to_csv(index=False).encode("utf-8"))


# A cell a spreadsheet reads as a formula when it starts with one of these (OWASP's list
# for CSV injection); a leading apostrophe makes it text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _formula_safe_text(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _formula_safe(table: pd.DataFrame) -> pd.DataFrame:
    """The table with every text cell and column name that a spreadsheet would run as a
    formula made plain text; numbers, negative ones included, stay as they are. For the
    CSV artifact only: the JSON result keeps the values as they were."""
    safe = table.copy()
    for name in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[name]):
            safe[name] = safe[name].map(_formula_safe_text, na_action="ignore")
    safe.columns = [_formula_safe_text(name) for name in safe.columns]
    return safe


def _named_aggregations(spec: GroupBy) -> dict[str, tuple[str, Aggregation]]:
    named = {
        f"{column}_{name}": (column, name)
        for column, names in spec.aggregations.items()
        for name in names
    }
    clashes = sorted(set(named) & set(spec.by))
    if clashes:
        raise DataInputError(
            f"The aggregation output {clashes[0]!r} has the name of a group-by column; "
            "rename that column."
        )
    return named


def _check_group_columns(table: pd.DataFrame, spec: GroupBy) -> None:
    available = [str(name) for name in table.columns]
    for column in [*spec.by, *spec.aggregations]:
        if column not in available:
            raise DataInputError(
                f"There is no column {column!r}; the columns are: {', '.join(available)}."
            )
    for column, names in spec.aggregations.items():
        numeric_only = sorted(NUMERIC_AGGREGATIONS.intersection(names))
        if numeric_only and not pd.api.types.is_numeric_dtype(table[column].dtype):
            raise DataInputError(
                f"{numeric_only[0]!r} needs a numeric column, but {column!r} holds "
                f"{_column_type(table[column])} values."
            )


# --- Report and prompt -------------------------------------------------------------------


def summary_markdown(profile: dict[str, Any], groups: list[dict[str, Any]]) -> str:
    """A Markdown report of a profile and of group-by results (the `json` of each GroupResult).

    Group tables show at most MARKDOWN_MAX_GROUP_ROWS rows and say how many more there are.
    """
    columns = profile["columns"]
    sections = [
        f"# Data summary\n\n{profile['rows']:,} rows, {len(columns):,} columns",
        _markdown_columns(columns),
        *(_markdown_group(group) for group in groups),
    ]
    return "\n\n".join(sections) + "\n"


def _markdown_columns(columns: list[dict[str, Any]]) -> str:
    header = ["Column", "Type", "Missing", "Distinct", "Mean", "Min", "Max"]
    rows = [
        [column["name"], column["type"], column["missing"], column["distinct"], *_extent(column)]
        for column in columns
    ]
    return "## Columns\n\n" + _markdown_table(header, rows)


def _extent(column: dict[str, Any]) -> list[Any]:
    summary = column["summary"] or {}
    return [summary.get("mean"), summary.get("min"), summary.get("max")]


def _markdown_group(group: dict[str, Any]) -> str:
    title = f"## Grouped by {', '.join(group['by'])}"
    rows = group["rows"]
    if not rows:
        return f"{title}\n\nNo groups."
    shown = rows[:MARKDOWN_MAX_GROUP_ROWS]
    header = list(shown[0])
    table = _markdown_table(header, [[row[key] for key in header] for row in shown])
    more = group["groups"] - len(shown)
    note = f"\n\n… and {more:,} more {'group' if more == 1 else 'groups'}." if more else ""
    return f"{title}\n\n{table}{note}"


def _markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = [_markdown_row(header), "|" + " --- |" * len(header)]
    lines.extend(_markdown_row(row) for row in rows)
    return "\n".join(lines)


def _markdown_row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(_markdown_cell(cell) for cell in cells) + " |"


def _markdown_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = _format_float(value) if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def _format_float(value: float) -> str:
    """Four decimals at most, trailing zeros dropped; tiny values in scientific notation."""
    if value != 0 and abs(value) < 0.001:
        return f"{value:.3g}"
    return f"{value:.4f}".rstrip("0").rstrip(".")


def narrative_prompt(
    request: str, profile: dict[str, Any], groups: list[dict[str, Any]], max_chars: int
) -> str:
    """The prompt asking a text model for a short narrative of the figures, at most `max_chars`.

    The figures are compact JSON. When they do not fit, they shrink in whole steps: top values
    go first, then group rows (halved until none), then numeric summaries, then columns.
    Raises DataInputError when even the smallest figures leave no room for the request.
    """
    opening = f"{NARRATIVE_INSTRUCTION}{REQUEST_HEADING}{request.strip()}{FIGURES_HEADING}"
    for figures in _shrinking_figures(profile, groups):
        prompt = opening + orjson.dumps(figures).decode()
        if len(prompt) <= max_chars:
            return prompt
    raise DataInputError(
        "The request is too long to fit in the model's prompt together with the figures; "
        "shorten it."
    )


def _shrinking_figures(
    profile: dict[str, Any], groups: list[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    columns = profile["columns"]
    yield _figures(profile, columns, groups)
    columns = [_without(column, "top") for column in columns]
    longest = max((len(group["rows"]) for group in groups), default=0)
    for keep in _halvings(longest):
        yield _figures(profile, columns, [_first_rows(group, keep) for group in groups])
    columns = [_without(column, "summary") for column in columns]
    groups = [_first_rows(group, 0) for group in groups]
    for keep in _halvings(len(columns)):
        yield _figures(profile, columns[:keep], groups)


def _figures(
    profile: dict[str, Any], columns: list[dict[str, Any]], groups: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "rows": profile["rows"],
        "columnCount": len(profile["columns"]),
        "columns": columns,
        "groupBy": groups,
    }


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in mapping.items() if name != key}


def _first_rows(group: dict[str, Any], keep: int) -> dict[str, Any]:
    rows = group["rows"]
    return {**group, "rows": rows[:keep], "truncated": group["truncated"] or keep < len(rows)}


def _halvings(count: int) -> Iterator[int]:
    """count, count // 2, ... 1, 0: few steps, each dropping half of what is left."""
    while count > 0:
        yield count
        count //= 2
    yield 0
