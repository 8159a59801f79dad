"""The text worker: many text tasks at once in one process, on its one event loop.

A text task waits on the model for seconds and barely uses the CPU, so a prefork pool
process per task (one per core by default) left a new task waiting in Redis until an
earlier one ended. The text queue is consumed instead by a Celery worker with a threads
pool of `text_slots_per_process` threads; each thread hands its task's coroutine to the
process's one loop (tasks/worker/runtime.py) and waits for it, so up to that many tasks stream
at once in one process. Image and data tasks, which need the CPU, keep the prefork pool.

The text worker runs as a child of `aitasks worker`, which watches it as Celery's prefork
pool watches its processes: when the child dies under its tasks (SIGKILL, the OOM killer),
the parent ends the leases of the tasks it held, sends them again at once and starts a
new child. The child notes the tasks it holds as files in a directory the parent gave
it, written before the claim and removed after the task is left, so a death at any point
leaves the parent knowing which tasks to free.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from celery import Celery, bootsteps

from persistence.settings import Settings
from tasks.kinds.text import KIND as TEXT_KIND

logger = logging.getLogger(__name__)

TEXT_QUEUE = TEXT_KIND.queue
# The child learns where to note its tasks from this variable (set by the parent).
HELD_DIR_VARIABLE = "AITASKS_TEXT_WORKER_HELD_DIR"
# Text tasks' writes are short statements: this many tasks share a connection of the
# process's pool, which keeps 50 slots at 10 connections instead of 50.
SLOTS_PER_CONNECTION = 5
# A child that dies this soon after it started is not restarted at once: a child that
# cannot start (a bad setting, a missing server) must not spin the CPU.
RESTART_PAUSE_SECONDS = 1.0
# Linux prctl(2) option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1


class HeldTasks:
    """The tasks a text worker holds, as empty files named by task id in a directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @contextlib.contextmanager
    def hold(self, task_id: uuid.UUID) -> Iterator[None]:
        path = self.directory / str(task_id)
        path.touch()
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def taken(self) -> list[uuid.UUID]:
        """Tasks noted and not yet left; then forgotten."""
        task_ids = []
        for path in self.directory.iterdir():
            with contextlib.suppress(ValueError):
                task_ids.append(uuid.UUID(path.name))
            path.unlink(missing_ok=True)
        return task_ids


def held_tasks() -> HeldTasks | None:
    """Where this process notes its tasks, if it is a text worker under a parent."""
    directory = os.environ.get(HELD_DIR_VARIABLE)
    return HeldTasks(Path(directory)) if directory else None


def pool_size(slots: int) -> int:
    return max(2, -(-slots // SLOTS_PER_CONNECTION))


def exit_with_parent() -> None:
    """Get SIGTERM (a warm shutdown) when the parent dies, even by SIGKILL: a text
    worker nobody watches would go on taking tasks whose death nobody would notice."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class TextWorker:
    """The parent's side: starts the child, frees its tasks and starts a new one when it
    dies, and stops it with the parent."""

    def __init__(self, settings: Settings, celery_app: Celery, *, beat: bool, quiet: bool) -> None:
        self.settings = settings
        self.celery_app = celery_app
        self.beat = beat
        self.quiet = quiet
        self.held = HeldTasks(Path(tempfile.mkdtemp(prefix="aitasks-text-worker-")))
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._watcher: threading.Thread | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        database_url, redis_url = self.settings.require_services()
        environment = {
            **os.environ,
            "AITASKS_DATABASE_URL": database_url,
            "AITASKS_REDIS_URL": redis_url,
            HELD_DIR_VARIABLE: str(self.held.directory),
        }
        flags = [*(["--beat"] if self.beat else []), *(["--quiet"] if self.quiet else [])]
        command = [sys.executable, "-m", "tasks.worker.text_worker_main", *flags]
        return subprocess.Popen(command, env=environment)

    def start(self) -> None:
        with self._lock:
            self._child = self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="aitasks-text-worker")
        self._watcher.daemon = True
        self._watcher.start()

    def _watch(self) -> None:
        while True:
            with self._lock:
                child = self._child
            assert child is not None
            started = time.monotonic()
            code = child.wait()
            if self._stopping.is_set():
                return
            logger.warning(
                "the text worker (pid %d) exited with %s; starting another", child.pid, code
            )
            self.recover()
            quick = time.monotonic() - started < RESTART_PAUSE_SECONDS
            if quick and self._stopping.wait(RESTART_PAUSE_SECONDS):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._child = self._spawn()

    def recover(self) -> None:
        """Free the tasks the dead child held and send them again, as the prefork pool's
        main process does for a dead pool process (tasks/worker/reconciler.py)."""
        from tasks.worker.reconciler import release_lost_tasks
        from tasks.worker.runtime import WorkerRuntime
        from tasks.worker.sweeper import resend_stale_tasks

        task_ids = self.held.taken()
        if not task_ids:
            return
        release_lost_tasks(self.settings, task_ids)
        try:
            runtime = WorkerRuntime(self.settings)
        except Exception as error:
            logger.warning("could not re-send the text worker's tasks now (%s)", error)
            return
        try:
            resend_stale_tasks(runtime, self.celery_app, kinds=[TEXT_KIND.name])
        except Exception as error:
            # The sweep sends them once their leases show as ended.
            logger.warning("could not re-send the text worker's tasks now (%s)", error)
        finally:
            runtime.close()

    def stop(self) -> None:
        """Ask the child to finish its running tasks and stop, and wait for it, as a warm
        shutdown of Celery's prefork pool waits for its processes."""
        with self._lock:
            self._stopping.set()
            child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
            child.wait()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join()
        shutil.rmtree(self.held.directory, ignore_errors=True)


def text_worker_step(text_worker: TextWorker) -> type[bootsteps.StartStopStep]:
    """A bootstep that stops the text worker when the prefork worker whose child it is
    begins to stop, so the two finish their running tasks side by side."""

    class TextWorkerStep(bootsteps.StartStopStep):  # type: ignore[misc]
        def stop(self, parent: Any) -> None:
            text_worker.stop()

        def terminate(self, parent: Any) -> None:
            text_worker.stop()

    return TextWorkerStep


def serve_text_only(settings: Settings, celery_app: Celery, *, beat: bool, quiet: bool) -> None:
    """`aitasks worker --queues text_generation`: this process only watches the text
    worker, until SIGTERM or SIGINT."""
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    text_worker = TextWorker(settings, celery_app, beat=beat, quiet=quiet)
    text_worker.start()
    stop.wait()
    text_worker.stop()
