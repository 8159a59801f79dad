"""Session-wide real services: PostgreSQL, Redis, a local OpenAI-compatible server, and
one stack (database, Redis, worker, API) that most tests share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.openai_server import OpenAICompatibleServer
from tests.fixtures.stack import Backing, Stack, backing_services, stack_env

# The built web app (`web_build`), for the tests that load it.
pytest_plugins = ["tests.fixtures.web"]

TEST_MODELS = "echo,slow-echo,fail-500,hang,thousand-tokens,flaky-429,unauthorized"
TEST_OPENAI_KEY = "sk-test-key"
# Short, so the `hang` model fails in a test's time.
TEST_OPENAI_TIMEOUT_SECONDS = "2"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("aitasks")


@pytest.fixture(scope="session")
def backing(workdir: Path) -> Iterator[Backing]:
    with backing_services(workdir) as services:
        yield services


@pytest.fixture(scope="session")
def openai_server() -> Iterator[OpenAICompatibleServer]:
    server = OpenAICompatibleServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def make_stack(
    backing: Backing, openai_server: OpenAICompatibleServer, workdir: Path
) -> Iterator[Callable[..., Stack]]:
    """Build stacks with settings of their own; all are stopped and dropped at the end."""
    made: list[tuple[Stack, str]] = []

    def make(**settings: str) -> Stack:
        name, database_url = backing.new_database()
        redis_url = backing.new_redis()
        env = stack_env(
            database_url,
            redis_url,
            OPENAI_API_KEY=TEST_OPENAI_KEY,
            OPENAI_BASE_URL=openai_server.base_url,
            AITASKS_MODELS=TEST_MODELS,
            AITASKS_OPENAI_TIMEOUT_SECONDS=TEST_OPENAI_TIMEOUT_SECONDS,
            **settings,
        )
        stack = Stack(database_url, redis_url, env, workdir)
        made.append((stack, name))
        return stack

    yield make
    # Every process is told to stop first, so they shut down side by side.
    for stack, _ in made:
        stack.terminate()
    for stack, name in made:
        stack.wait_stopped()
        backing.drop_database(name)


@pytest.fixture(scope="session")
def stack(make_stack: Callable[..., Stack]) -> Stack:
    """The shared stack: one worker, one API."""
    # Tests on it insert PENDING tasks with no message and send them when they are ready
    # (after their subscriptions are open); its worker must not send them first, as it
    # does after 5 s by default. Recovery of such tasks is tested on stacks of their own.
    shared = make_stack(AITASKS_PENDING_ORPHAN_SECONDS="3600")
    shared.start_worker()
    shared.start_api()
    return shared
