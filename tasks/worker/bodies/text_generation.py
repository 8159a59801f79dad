"""TEXT_GENERATION: the prompt to a text model, its answer streamed into the result."""

from __future__ import annotations

from tasks.worker.running import Outcome, RunningTask


async def generate_text(running: RunningTask) -> Outcome | None:
    task = running.task
    provider = running.runtime.provider_for(task.model)
    async for chunk in provider.stream(task.prompt, task.model):
        await running.add(chunk)
    return None
