"""What the API process uses of `tasks/`: who the caller is and their rate limits,
creating, cancelling and retrying tasks (submission), handing them to the broker
(dispatch), following them (watching), and checking what comes with them (files,
params, text).

May import `persistence`, the task kinds (`tasks.kinds`) and the modules at the root
of `tasks/` (errors, logs, the Celery app, the params models); never `tasks.worker`,
so the API loads no worker runtime, Pillow or pandas (tests/test_layers.py checks)."""
