"""The offline `demo` model: a deterministic answer, written slowly enough to watch."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Sequence
from typing import Any

from tasks.data_analysis_narrative import read_narrative_prompt
from tasks.providers.base import Chunk, ImageData

LABEL = "[demo model: offline, no AI was called. Set OPENAI_API_KEY to use a real model.]"
# How much of the prompt the answer quotes back.
QUOTE_CHARS = 200
# A narrative of a table names this many columns, and rows of each group.
NARRATED_MAX = 3
# Channels this close together read as a shade of grey.
GREY_SPREAD = 24


def demo_answer(prompt: str) -> str:
    quoted = " ".join(prompt.split())
    if len(quoted) > QUOTE_CHARS:
        quoted = quoted[:QUOTE_CHARS] + "..."
    return (
        f"{LABEL}\n\nYou asked: {quoted!r}. "
        f"The prompt has {len(prompt.split())} words and {len(prompt)} characters. "
        "This answer is written word by word so that the task can be watched going from "
        "PENDING to PROCESSING to COMPLETED, with its progress rising on the way."
    )


def demo_narrative(request: str, figures: dict[str, Any]) -> str:
    """What the demo model can honestly say about a table without a model: the request,
    and the figures the analysis gave it, restated in words."""
    columns = figures.get("columns", [])
    names = ", ".join(column["name"] for column in columns[:NARRATED_MAX])
    more = f" and {len(columns) - NARRATED_MAX} more" if len(columns) > NARRATED_MAX else ""
    sentences = [
        f"You asked: {request!r}. A real model would answer that from the figures; the demo "
        f"model restates them. The table has {figures.get('rows', 0)} rows and "
        f"{figures.get('columnCount', len(columns))} columns ({names}{more})."
    ]
    for column in columns[:NARRATED_MAX]:
        summary = column.get("summary")
        if summary and summary.get("count"):
            sentences.append(
                f"{column['name']} runs from {summary['min']} to {summary['max']} "
                f"(mean {_number(summary['mean'])})."
            )
    for group in figures.get("groupBy", []):
        rows = "; ".join(_group_row(row) for row in group["rows"][:NARRATED_MAX])
        sentences.append(f"By {', '.join(group['by'])}, {group['groups']} groups: {rows}.")
    return f"{LABEL}\n\n" + " ".join(sentences)


def _number(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _group_row(row: dict[str, Any]) -> str:
    return ", ".join(f"{name} {_number(value)}" for name, value in row.items())


def demo_caption(image: ImageData) -> str:
    """What the demo model can honestly say about an image without a model: its size and
    its average colour."""
    from PIL import Image, ImageStat

    with Image.open(io.BytesIO(image.data)) as picture:
        width, height = picture.size
        mean = ImageStat.Stat(picture.convert("RGB")).mean
    red, green, blue = (round(channel) for channel in mean)
    return (
        f"{LABEL}\n\nAn image {width} pixels wide and {height} high; its average colour is "
        f"#{red:02x}{green:02x}{blue:02x} ({_colour_name(red, green, blue)})."
    )


def _colour_name(red: int, green: int, blue: int) -> str:
    if max(red, green, blue) - min(red, green, blue) < GREY_SPREAD:
        return "grey" if 40 < red < 215 else ("black" if red <= 40 else "white")
    names = {"red": red, "green": green, "blue": blue}
    return f"mostly {max(names, key=lambda name: names[name])}"


def _answer(prompt: str) -> str:
    narrative = read_narrative_prompt(prompt)
    return demo_answer(prompt) if narrative is None else demo_narrative(*narrative)


class DemoProvider:
    def __init__(self, duration_seconds: float) -> None:
        self._duration = duration_seconds

    async def stream(
        self, prompt: str, model: str, images: Sequence[ImageData] = ()
    ) -> AsyncIterator[Chunk]:
        answer = demo_caption(images[0]) if images else _answer(prompt)
        words = answer.split(" ")
        pause = self._duration / len(words)
        for index, word in enumerate(words):
            if pause:
                await asyncio.sleep(pause)
            text = word if index == 0 else " " + word
            yield Chunk(text, progress=(index + 1) / len(words))
