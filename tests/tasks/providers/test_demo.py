"""The offline demo model answers what it is asked, never the service's instructions."""

from __future__ import annotations

import asyncio

from tasks.data_analysis_narrative import NARRATIVE_INSTRUCTION
from tasks.providers.demo import DemoProvider
from tasks.worker.bodies.data_analysis_steps import narrative_prompt

FIGURES = {
    "rows": 3,
    "columns": [
        {"name": "region", "type": "string", "missing": 0, "distinct": 2, "summary": None},
        {
            "name": "amount",
            "type": "integer",
            "missing": 0,
            "distinct": 3,
            "summary": {"count": 3, "mean": 4.0, "min": 3, "max": 5},
        },
    ],
}
GROUPS = [
    {
        "by": ["region"],
        "rows": [{"region": "north", "amount_sum": 7}, {"region": "south", "amount_sum": 5}],
        "groups": 2,
        "truncated": False,
    }
]


def answer(prompt: str) -> str:
    async def collect() -> str:
        return "".join([chunk.text async for chunk in DemoProvider(0).stream(prompt, "demo")])

    return asyncio.run(collect())


def test_the_data_narrative_answers_the_request_from_the_figures() -> None:
    prompt = narrative_prompt("Which region sold most?", FIGURES, GROUPS, max_chars=10_000)

    narrative = answer(prompt)

    assert "You asked: 'Which region sold most?'" in narrative
    assert NARRATIVE_INSTRUCTION[:40] not in narrative
    assert "3 rows and 2 columns (region, amount)" in narrative
    assert "amount runs from 3 to 5" in narrative
    assert "region north, amount_sum 7" in narrative


def test_a_plain_prompt_is_quoted_back() -> None:
    assert "You asked: 'Hello there'" in answer("Hello there")
