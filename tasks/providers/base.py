"""What a text model gives the runner: chunks of output, and failures it can explain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Chunk:
    text: str
    # Share of the answer written so far, where the model can tell (0..1).
    progress: float | None = None


class ProviderError(Exception):
    """The model could not answer; the message is shown to the user as the task's error.

    `transient` failures (rate limits, server errors, timeouts, broken connections) may
    pass: the task is tried again later. Others (a bad request, a wrong key) will not.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class ImageData:
    """An image shown to a vision-capable model with the prompt."""

    content_type: str
    data: bytes


class TextProvider(Protocol):
    def stream(
        self, prompt: str, model: str, images: Sequence[ImageData] = ()
    ) -> AsyncIterator[Chunk]: ...
