"""The floor's process (`bench.floor`), served exactly as `aitasks api` serves the API:
one uvicorn process with the options of `graphql_app.cli.api`.

The length of the message to push comes in FLOOR_MESSAGE_BYTES_VARIABLE; the rest is
the API's own settings (AITASKS_DATABASE_URL, AITASKS_REDIS_URL, AITASKS_HOST, ...).
"""

from __future__ import annotations

import logging
import os
import sys

from bench.process_limits import exit_with_parent, raise_open_files_limit

FLOOR_MESSAGE_BYTES_VARIABLE = "AITASKS_BENCH_FLOOR_MESSAGE_BYTES"


def main() -> None:
    raise_open_files_limit()
    exit_with_parent()
    import uvicorn

    from bench.floor import create_floor_app
    from persistence.settings import get_settings

    # As `aitasks` does before any command.
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = get_settings()
    app = create_floor_app(settings, int(os.environ[FLOOR_MESSAGE_BYTES_VARIABLE]))
    # The options of `graphql_app.cli.api`, so the two differ only in what they run.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        ws_per_message_deflate=False,
        log_level="info",
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
    )


if __name__ == "__main__":
    main()
