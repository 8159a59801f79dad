"""The Celery worker: its app and how `aitasks worker` starts it (app), the process's
runtime and event loop (runtime), running one task (execution, running), the text
worker beside it (text_worker, text_worker_main), the sweeps and recovery after an
outage (sweeper, reconciler), and its metrics (metrics, metrics_server). The work
bodies of the task kinds live in `tasks.worker.bodies`.

May import everything else in `tasks/` (the services too: a sweep re-dispatches) and
`persistence`; nothing outside `tasks/` imports it but the CLI, which starts it."""
