"""TEXT_GENERATION: the prompt to a text model, its answer streamed into the result."""

from tasks.kinds.kind import Kind

KIND = Kind(
    name="TEXT_GENERATION",
    order=0,
    work="tasks.worker.bodies.text_generation:generate_text",
    summary="a text model's answer to the prompt, streamed",
    needs_prompt=True,
)
