"""Text that PostgreSQL can store: valid UTF-8 (no lone surrogates) and no NUL."""

from __future__ import annotations

from typing import Any

from tasks.errors import InvalidInputError


def check_text(field: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(field, f"The {field} is not valid Unicode text.") from None
    if "\x00" in value:
        raise InvalidInputError(field, f"The {field} contains a NUL character, which is not text.")


def check_json_text(field: str, value: Any) -> None:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        check_text(field, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(field, str(key))
            check_json_text(field, item)
    elif isinstance(value, list):
        for item in value:
            check_json_text(field, item)
