"""`/metrics` for Prometheus. `/healthz`: the process is up. `/readyz`: it can serve,
meaning PostgreSQL and Redis answer and the database schema is the one this code
expects. All unauthenticated and fast: each check gives up after READY_CHECK_SECONDS."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence import repository
from persistence.migrate import head_revision
from persistence.outages import POSTGRESQL, REDIS
from schema.context import Services

# PostgreSQL taking longer than this to answer counts as down (Redis: the command
# client's AITASKS_ENQUEUE_TIMEOUT_SECONDS).
READY_CHECK_SECONDS = 2.0
HEAD_REVISION = head_revision()


async def metrics(request: Request) -> Response:
    """Prometheus metrics of this process (unauthenticated, like the health checks:
    expose /metrics only to the network your Prometheus scrapes from)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _checked(check: Awaitable[str | None], *, bounded: bool = True) -> str | None:
    """None when the check passed, else what is wrong. Redis is not `bounded` here: its
    client's own socket timeout ends a stalled command, where cancelling redis-py in
    the middle of one can leave it stuck."""
    try:
        return await (asyncio.wait_for(check, READY_CHECK_SECONDS) if bounded else check)
    except TimeoutError:
        return f"no answer within {READY_CHECK_SECONDS:g} s"
    except Exception as error:
        return f"{type(error).__name__}: {error}"


async def _database(services: Services) -> str | None:
    async with services.sessionmaker() as session:
        revision = await repository.schema_revision(session)
    if revision != HEAD_REVISION:
        return f"schema at {revision}, code expects {HEAD_REVISION}: run `aitasks migrate`"
    return None


async def _redis(services: Services) -> str | None:
    await services.dispatcher.ping()
    return None


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    database, redis = await asyncio.gather(
        _checked(_database(services)), _checked(_redis(services), bounded=False)
    )
    checks: dict[str, Any] = {
        "postgres": database or "ok",
        "redis": redis or "ok",
    }
    down = [name for name, problem in ((POSTGRESQL, database), (REDIS, redis)) if problem]
    body = {"status": "unavailable" if down else "ready", "down": down, "checks": checks}
    if not down:
        return JSONResponse(body)
    retry_after = str(services.settings.outage_retry_after_seconds)
    return JSONResponse(body, status_code=503, headers={"Retry-After": retry_after})
