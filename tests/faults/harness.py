"""One fault case: the product (API and worker) on the suite's own servers, behind its
proxies; clients creating tasks before, during and after the fault; and what the event
log says once every task has ended."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from persistence import admin
from persistence.migrate import upgrade_to_head
from tests.faults.servers import Postgres, Proxy, Redis
from tests.fixtures.graphql import CREATE_TASK
from tests.fixtures.stack import Stack, stack_env

# Seconds the demo model takes per task: long enough that a fault meets tasks mid-way.
DEMO_SECONDS = 1.0
# Tasks created before the fault, so some are queued and some running when it hits.
TASKS_BEFORE = 16
# Clients keep creating one task this often during the fault and a little after.
CREATE_EVERY_SECONDS = 0.5
# Creates per case, the backlog's and the clients' together, at most: a case that lasts
# long (the subscriber case follows every task to its end) would otherwise keep feeding
# its own backlog, and the suite would measure the burst rather than the fault.
CREATES_MAX = 60
# A create answered in more than this counts as no answer.
CREATE_TIMEOUT_SECONDS = 10.0
# Every task must have ended this long after the fault ended (the bound), plus
# the backlog's own time, which the case adds.
RECOVERY_SECONDS = 30.0
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
# Where to copy every API and worker log of a run before its directory goes, to look into
# a case that failed (`AITASKS_FAULTS_KEEP_LOGS=DIR make faults`); unset, nothing is kept.
KEEP_LOGS_ENV = "AITASKS_FAULTS_KEEP_LOGS"
# The worker's pool processes in every case.
CONCURRENCY = 2


@dataclass
class Answers:
    """How createTask was answered: `ok`, `unavailable` (503 + SERVICE_UNAVAILABLE +
    Retry-After), `bare` (a 500 or anything else a client cannot act on) and `none`
    (no answer: the API was down, or timed out)."""

    counts: Counter[str] = field(default_factory=Counter)
    task_ids: list[str] = field(default_factory=list)

    def record(self, response: httpx.Response | None) -> None:
        if response is None:
            self.counts["none"] += 1
            return
        try:
            body = response.json()
        except ValueError:
            body = {}
        created = (body.get("data") or {}).get("createTask") or {}
        errors = body.get("errors") or []
        codes = {(error.get("extensions") or {}).get("code") for error in errors}
        if response.status_code == 200 and created.get("id"):
            self.counts["ok"] += 1
            self.task_ids.append(created["id"])
        elif (
            response.status_code == 503
            and codes == {"SERVICE_UNAVAILABLE"}
            and response.headers.get("retry-after")
        ):
            self.counts["unavailable"] += 1
        else:
            self.counts["bare"] += 1

    def summary(self) -> str:
        return ", ".join(f"{count} {kind}" for kind, count in sorted(self.counts.items()))


def create(url: str, prompt: str) -> httpx.Response | None:
    body = json.dumps({"query": CREATE_TASK, "variables": {"input": {"prompt": prompt}}})
    try:
        return httpx.post(
            url,
            content=body,
            headers={"content-type": "application/json"},
            timeout=CREATE_TIMEOUT_SECONDS,
        )
    except httpx.HTTPError:
        return None


class Clients:
    """Creates a task every CREATE_EVERY_SECONDS in a thread until stopped, or until it
    has made `limit`."""

    def __init__(self, stack: Stack, limit: int) -> None:
        self.stack = stack
        self.limit = limit
        self.answers = Answers()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Clients:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        number = 0
        while number < self.limit and not self._stop.wait(CREATE_EVERY_SECONDS):
            number += 1
            self.answers.record(create(self.stack.graphql_url, f"during the fault #{number}"))


@dataclass
class Outcome:
    case: str
    created: int
    lost: int
    completed_twice: int
    stuck: int
    recovery_seconds: float | None
    backlog_seconds: float
    answers: str
    bare: int
    # What resuming subscribers heard (the subscriber case only): a summary, and its
    # gaps, duplicates, changes out of order and failed subscribers together.
    subscribers: str = ""
    subscriber_errors: int = 0

    @property
    def passed(self) -> bool:
        return (
            self.lost == 0
            and self.completed_twice == 0
            and self.stuck == 0
            and self.bare == 0
            and self.subscriber_errors == 0
            and self.recovery_seconds is not None
        )


async def _states(database_url: str) -> tuple[dict[str, str], int]:
    connection = await asyncpg.connect(database_url, timeout=5)
    try:
        rows = await connection.fetch("SELECT id::text, status FROM tasks")
        twice = await connection.fetchval(
            "SELECT count(*) FROM (SELECT task_id FROM task_events WHERE status = 'COMPLETED'"
            " GROUP BY task_id HAVING count(*) > 1) AS doubled"
        )
    finally:
        await connection.close()
    return {row["id"]: row["status"] for row in rows}, int(twice)


async def _sequences(database_url: str) -> dict[str, int]:
    connection = await asyncpg.connect(database_url, timeout=5)
    try:
        rows = await connection.fetch("SELECT id::text, sequence FROM tasks")
    finally:
        await connection.close()
    return {row["id"]: row["sequence"] for row in rows}


def sequences(database_url: str) -> dict[str, int]:
    """Every task's current sequence."""
    return asyncio.run(_sequences(database_url))


def states(database_url: str) -> tuple[dict[str, str], int]:
    """Every task's status, and how many tasks the event log shows completed twice."""
    return asyncio.run(_states(database_url))


@dataclass
class Bench:
    """The suite's servers, proxies in front of them, and a stack per case."""

    workdir: Path
    postgres: Postgres
    postgres_proxy: Proxy
    redis: Redis | None = None
    redis_proxy: Proxy | None = None
    stacks: list[Stack] = field(default_factory=list)

    def new_redis(self, *, persistent: bool) -> None:
        self.close_redis()
        self.redis = Redis(self.workdir / f"redis-{uuid.uuid4().hex[:6]}", persistent=persistent)
        self.redis.start()
        self.redis_proxy = Proxy(self.redis.port).start()

    def close_redis(self) -> None:
        if self.redis_proxy is not None:
            self.redis_proxy.stop()
        if self.redis is not None:
            self.redis.destroy()
        self.redis = self.redis_proxy = None

    def new_stack(self, *, persistent_redis: bool = False, **settings: str) -> Stack:
        self.new_redis(persistent=persistent_redis)
        assert self.redis_proxy is not None
        name = f"aitasks_faults_{uuid.uuid4().hex[:8]}"
        direct = asyncio.run(admin.create_database(self.postgres.url, name))
        upgrade_to_head(direct)
        through_proxy = direct.replace(
            f":{self.postgres.port}/", f":{self.postgres_proxy.port}/", 1
        )
        env = stack_env(
            through_proxy,
            f"redis://127.0.0.1:{self.redis_proxy.port}/0",
            AITASKS_DEMO_DURATION_SECONDS=str(DEMO_SECONDS),
            **settings,
        )
        stack = Stack(through_proxy, env["AITASKS_REDIS_URL"], env, self.workdir)
        stack.direct_database_url = direct  # type: ignore[attr-defined]
        self.stacks.append(stack)
        return stack

    def end_stack(self, stack: Stack) -> None:
        stack.terminate()
        stack.wait_stopped()

    def close(self) -> None:
        for stack in self.stacks:
            with contextlib.suppress(Exception):
                self.end_stack(stack)
        self.close_redis()
        self.postgres_proxy.stop()
        self.postgres.destroy()


@contextlib.contextmanager
def bench() -> Iterator[Bench]:
    """The suite's servers, in a directory of their own. Not under pytest's temporary
    directory: each pytest run on the machine makes its root private again, and the
    PostgreSQL of a root user runs as another user, which must reach its data."""
    workdir = Path(tempfile.mkdtemp(prefix="aitasks-faults-"))
    postgres = Postgres(workdir / "pgdata").init()
    proxy = Proxy(postgres.port).start()
    made = Bench(workdir, postgres, proxy)
    try:
        yield made
    finally:
        made.close()
        keep_logs(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


def keep_logs(workdir: Path) -> None:
    """Copy the run's process logs to the directory named by KEEP_LOGS_ENV, if set."""
    target = os.environ.get(KEEP_LOGS_ENV)
    if not target:
        return
    kept = Path(target) / workdir.name
    kept.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("*.log"):
        shutil.copy2(log, kept / log.name)
    print(f"faults: the run's logs are in {kept}")


def backlog_seconds(database_url: str) -> float:
    """What the tasks not yet ended need by themselves, on the case's worker."""
    found, _ = states(database_url)
    unfinished = sum(status not in TERMINAL for status in found.values())
    return unfinished * DEMO_SECONDS / CONCURRENCY


def measure(case: str, stack: Stack, answers: Answers, fault_ended: float) -> Outcome:
    """Wait until every task has ended (or the bound passed) and count."""
    database_url: str = stack.direct_database_url  # type: ignore[attr-defined]
    backlog = backlog_seconds(database_url)
    deadline = fault_ended + RECOVERY_SECONDS + backlog
    ended_at = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            found, _ = states(database_url)
            if found and all(status in TERMINAL for status in found.values()):
                ended_at = time.monotonic()
                break
        time.sleep(0.2)
    found, twice = states(database_url)
    lost = len(set(answers.task_ids) - set(found))
    stuck = sum(status not in TERMINAL for status in found.values())
    return Outcome(
        case=case,
        created=len(found),
        lost=lost,
        completed_twice=twice,
        stuck=stuck,
        recovery_seconds=None if ended_at is None else max(0.0, ended_at - fault_ended),
        backlog_seconds=backlog,
        answers=answers.summary(),
        bare=answers.counts["bare"],
    )
