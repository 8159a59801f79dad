"""Downloading what tasks produced: `GET /tasks/{task_id}/artifacts/{name}`."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from graphql_app.http.sessions import caller_of_headers
from persistence.models import FILE_NAME_MAX_CHARS
from schema.context import Services
from tasks.services import submission

# Artifacts never change once stored: a browser may keep one for a while.
CACHE_SECONDS = 3600
# Image types a browser may show in place; anything else downloads.
SHOWN_IN_PLACE = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff"}
)


def _disposition(name: str, content_type: str) -> str:
    kind = "inline" if content_type in SHOWN_IN_PLACE else "attachment"
    return f"{kind}; filename*=UTF-8''{quote(name, safe='')}"


async def download_artifact(request: Request) -> Response:
    """The artifact's bytes, or 404 for an unknown task or name."""
    services: Services = request.app.state.services
    # A GET that changes nothing: the login cookie alone may fetch it (an <img> does).
    caller = await caller_of_headers(
        services, request.app.state.sessions, request.headers, state_changing=False
    )
    if isinstance(caller, Response):
        return caller
    task_id, name = request.path_params["task_id"], request.path_params["name"]
    artifact = None
    # A name no artifact can have (a NUL, too long) is not worth a query.
    if "\x00" not in name and len(name) <= FILE_NAME_MAX_CHARS:
        async with services.sessionmaker() as session:
            artifact = await submission.find_artifact(session, task_id, name, caller.name)
    if artifact is None:
        return JSONResponse(
            {"error": f"Task {task_id!r} has no artifact named {name!r}."}, status_code=404
        )
    return Response(
        artifact.data,
        media_type=artifact.content_type,
        headers={
            "Content-Disposition": _disposition(artifact.name, artifact.content_type),
            # Served as what it says it is, and never run as a page on this origin.
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": f"private, max-age={CACHE_SECONDS}",
        },
    )
