"""The offline `demo` model: a deterministic answer, written slowly enough to watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tasks.providers.base import Chunk

LABEL = "[demo model: offline, no AI was called. Set OPENAI_API_KEY to use a real model.]"
# How much of the prompt the answer quotes back.
QUOTE_CHARS = 200


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


class DemoProvider:
    def __init__(self, duration_seconds: float) -> None:
        self._duration = duration_seconds

    async def stream(self, prompt: str, model: str) -> AsyncIterator[Chunk]:
        words = demo_answer(prompt).split(" ")
        pause = self._duration / len(words)
        for index, word in enumerate(words):
            if pause:
                await asyncio.sleep(pause)
            text = word if index == 0 else " " + word
            yield Chunk(text, progress=(index + 1) / len(words))
