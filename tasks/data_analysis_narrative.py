"""The narrative prompt of a DATA_ANALYSIS task: the request and the figures, in a shape
the data body writes (`narrative_prompt` in tasks/worker/bodies/data_analysis_steps.py)
and the offline demo model reads back. Apart from the steps, which load pandas, so the
demo model reads it without them."""

from __future__ import annotations

from typing import Any

import orjson

NARRATIVE_INSTRUCTION = (
    "Write a short narrative that answers the request below. Rely only on the figures given "
    "after it: do not invent, estimate or recall other numbers. The figures may be abridged; "
    '"rows", "columnCount" and each "groups" still give the full totals. If the figures '
    "cannot answer the request, say so."
)

REQUEST_HEADING = "\n\nRequest:\n"
FIGURES_HEADING = "\n\nFigures (JSON):\n"


def read_narrative_prompt(prompt: str) -> tuple[str, dict[str, Any]] | None:
    """The request and the figures of a prompt `narrative_prompt` wrote, or None for any
    other prompt (for a model that answers from the figures without reading prose)."""
    if not prompt.startswith(NARRATIVE_INSTRUCTION):
        return None
    head, separator, figures = prompt.partition(FIGURES_HEADING)
    _, _, request = head.partition(REQUEST_HEADING)
    if not separator:
        return None
    try:
        return request.strip(), orjson.loads(figures)
    except orjson.JSONDecodeError:
        return None
