"""Any OpenAI-compatible endpoint, through the `openai` SDK's streaming chat completions."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx2
import openai

from tasks.providers.base import Chunk, ImageData, ProviderError

# Longest provider message quoted in a task's error.
ERROR_DETAIL_CHARS = 500
# HTTP statuses that say "not now" rather than "never": a request timeout, a conflict,
# a rate limit, and every server error.
TRANSIENT_STATUSES = frozenset({408, 409, 429})


def _is_transient(error: openai.OpenAIError) -> bool:
    if isinstance(error, openai.APIConnectionError):  # includes timeouts
        return True
    if isinstance(error, openai.APIStatusError):
        return error.status_code in TRANSIENT_STATUSES or error.status_code >= 500
    return False


def create_client(api_key: str, base_url: str | None, timeout_seconds: float) -> openai.AsyncOpenAI:
    # No SDK retries: failing fast keeps a task's outcome readable, and retrying belongs to
    # the task queue, where it is visible on the task.
    return openai.AsyncOpenAI(
        api_key=api_key, base_url=base_url, timeout=timeout_seconds, max_retries=0
    )


def _describe(error: openai.OpenAIError, timeout_seconds: float) -> str:
    if isinstance(error, openai.APITimeoutError):
        return f"The model provider did not answer within {timeout_seconds:g} seconds."
    if isinstance(error, openai.APIConnectionError):
        return f"Could not reach the model provider: {error}"
    if isinstance(error, openai.APIStatusError):
        detail = str(error.message)[:ERROR_DETAIL_CHARS]
        return f"The model provider answered HTTP {error.status_code}: {detail}"
    return f"The model provider failed: {str(error)[:ERROR_DETAIL_CHARS]}"


def _message(prompt: str, images: Sequence[ImageData]) -> Any:
    """The user's message: plain text, or text and images as data URLs (the chat
    completions format that vision-capable models read)."""
    if not images:
        return {"role": "user", "content": prompt}
    parts: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
    for image in images:
        url = f"data:{image.content_type};base64,{base64.b64encode(image.data).decode()}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return {"role": "user", "content": parts}


class OpenAIProvider:
    def __init__(self, client: openai.AsyncOpenAI, timeout_seconds: float) -> None:
        self._client = client
        self._timeout = timeout_seconds

    async def stream(
        self, prompt: str, model: str, images: Sequence[ImageData] = ()
    ) -> AsyncIterator[Chunk]:
        try:
            response = await self._client.chat.completions.create(
                model=model, messages=[_message(prompt, images)], stream=True
            )
            # Closing the stream closes the HTTP response, so an abandoned answer stops
            # costing tokens at the provider.
            async with response:
                async for event in response:
                    for choice in event.choices:
                        if choice.delta and choice.delta.content:
                            yield Chunk(choice.delta.content)
        except openai.OpenAIError as error:
            raise ProviderError(
                _describe(error, self._timeout), transient=_is_transient(error)
            ) from error
        except httpx2.TimeoutException as error:
            # A stall in the middle of a streamed answer surfaces from the HTTP client.
            raise ProviderError(
                f"The model provider stopped answering for {self._timeout:g} seconds.",
                transient=True,
            ) from error
        except httpx2.TransportError as error:
            raise ProviderError(
                f"The connection to the model provider broke: {error}", transient=True
            ) from error
