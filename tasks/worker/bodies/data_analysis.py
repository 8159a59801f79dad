"""DATA_ANALYSIS: a CSV or JSON file read with pandas, profiled and grouped; the figures
go to `output`, a Markdown report to `result`, each group-by table to a CSV artifact,
and, when the task has a prompt, a text model's narrative written from the figures."""

from __future__ import annotations

import re
from typing import Any

from persistence.models import TaskFile
from tasks.data_analysis_params import DataParams
from tasks.providers.base import Chunk
from tasks.worker.bodies.data_analysis_steps import (
    DataInputError,
    DataLimits,
    GroupResult,
    group_by,
    load_table,
    narrative_prompt,
    profile,
    summary_markdown,
)
from tasks.worker.running import Outcome, RunningTask, in_thread

# Shares of the progress bar: reading, profiling, the group-bys, the narrative.
READ_AT = 0.3
PROFILED_AT = 0.5
GROUPED_AT = 0.7
# Strings in the figures are cut to this many characters (a free-text column would
# otherwise put whole paragraphs into the output and the model's prompt).
CELL_MAX_CHARS = 200
NARRATIVE_HEADING = "\n\n## Narrative\n\n"
UNSAFE_NAME_CHARS = re.compile(r"[^\w.-]+")


def _limits(running: RunningTask) -> DataLimits:
    settings = running.runtime.settings
    return DataLimits(
        max_rows=settings.data_max_rows,
        max_columns=settings.data_max_columns,
        max_groups=settings.data_max_groups,
        max_cell_chars=CELL_MAX_CHARS,
    )


def _artifact(index: int, result: GroupResult) -> TaskFile:
    keys = UNSAFE_NAME_CHARS.sub("-", "-".join(result.json["by"]))[:80]
    return TaskFile(f"group-by-{index + 1}-{keys}.csv", "text/csv; charset=utf-8", result.csv)


async def _narrate(
    running: RunningTask, figures: dict[str, Any], groups: list[dict[str, Any]]
) -> None:
    task = running.task
    prompt = await in_thread(
        DataInputError,
        narrative_prompt,
        task.prompt,
        figures,
        groups,
        max_chars=running.runtime.settings.prompt_max_chars,
    )
    await running.report(GROUPED_AT, "writing the narrative")
    await running.add(Chunk(NARRATIVE_HEADING))
    provider = running.runtime.provider_for(task.model)
    async for chunk in provider.stream(prompt, task.model):
        progress = None if chunk.progress is None else GROUPED_AT + chunk.progress * 0.3
        await running.add(Chunk(chunk.text, progress))


async def _read(running: RunningTask, params: DataParams, limits: DataLimits) -> Any:
    [source] = await running.input_files()
    await running.report(0.0, f"reading {source.name}")
    return await in_thread(
        DataInputError,
        load_table,
        source.data,
        file_name=source.name,
        content_type=source.content_type,
        params=params,
        limits=limits,
    )


async def analyse_data(running: RunningTask) -> Outcome:
    params = DataParams.model_validate(running.task.params)
    limits = _limits(running)
    table = await _read(running, params, limits)
    await running.report(READ_AT, "profiling")
    figures = await in_thread(DataInputError, profile, table, params, limits)
    groups: list[dict[str, Any]] = []
    artifacts = []
    for index, spec in enumerate(params.group_by):
        share = (GROUPED_AT - PROFILED_AT) * index / len(params.group_by)
        await running.report(PROFILED_AT + share, f"grouping by {', '.join(spec.by)}")
        result = await in_thread(DataInputError, group_by, table, spec, limits)
        groups.append(result.json)
        artifacts.append(_artifact(index, result))
    del table
    await running.add(Chunk(summary_markdown(figures, groups)))
    if running.task.prompt.strip():
        await _narrate(running, figures, groups)
    return Outcome({"profile": figures, "groups": groups}, tuple(artifacts))
