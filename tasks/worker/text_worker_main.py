"""The text worker's process: what `aitasks worker` starts as its child to run text tasks
side by side (tasks/worker/text_worker.py has how the parent watches it). Apart from
tasks/worker/text_worker.py, which the worker's main process imports, because this module
builds on the whole worker (tasks/worker/app.py) and that one imports the watching part.
"""

from __future__ import annotations

import logging
import sys
import warnings

from celery.exceptions import SecurityWarning

from persistence.settings import Settings, get_settings
from tasks import logs
from tasks.worker.app import create_worker_app, worker_argv
from tasks.worker.reconciler import ReconcilerStep
from tasks.worker.runtime import get_runtime, use_threaded_runtime
from tasks.worker.text_worker import TEXT_QUEUE, exit_with_parent, pool_size


def text_worker_argv(settings: Settings, *, quiet: bool) -> list[str]:
    """`celery worker`'s command line for the text worker."""
    argv = worker_argv([TEXT_QUEUE], concurrency=settings.text_slots_per_process, quiet=quiet)
    return [*argv, "--pool", "threads"]


def main() -> None:
    """The child: `python -m tasks.worker.text_worker_main [--beat] [--quiet]`, settings from the
    environment the parent passed."""
    exit_with_parent()
    settings = get_settings()
    quiet = "--quiet" in sys.argv[1:]
    # A fresh interpreter: its lines take the same form as its parent's (`aitasks worker`).
    logs.configure(settings.json_logs, level=logging.WARNING if quiet else logging.INFO)
    if quiet:
        # As its parent under `aitasks run`: Celery's warning about running as root would
        # be repeated on every start, with nothing a developer can change.
        warnings.filterwarnings("ignore", category=SecurityWarning)
    use_threaded_runtime(pool_size(settings.text_slots_per_process))
    get_runtime().warm_up()
    app = create_worker_app(settings)
    if "--beat" in sys.argv[1:]:
        app.steps["worker"].add(ReconcilerStep)
    app.worker_main(text_worker_argv(settings, quiet=quiet))


if __name__ == "__main__":
    main()
