"""The agent's end of `bench.processes.Agent`: parameters and commands in on stdin, one
JSON line per event out on stdout."""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from bench.process_limits import exit_with_parent, raise_open_files_limit
from bench.processes import MESSAGE_LIMIT_BYTES


class Channel:
    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    @classmethod
    async def open(cls) -> Channel:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MESSAGE_LIMIT_BYTES)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        return cls(reader)

    async def receive(self) -> dict[str, Any] | None:
        """The next command, or None once the runner has closed the pipe."""
        line = await self._reader.readline()
        return json.loads(line) if line else None

    def send(self, event: str, **data: Any) -> None:
        sys.stdout.write(json.dumps({"event": event, **data}, separators=(",", ":")) + "\n")
        sys.stdout.flush()


Main = Callable[[Channel, dict[str, Any]], Awaitable[None]]


def run_agent(main: Main) -> None:
    """Run an agent: raise limits, read its parameters, run `main`, report a crash."""
    raise_open_files_limit()
    exit_with_parent()

    async def serve() -> None:
        channel = await Channel.open()
        params = await channel.receive()
        if params is None:
            return
        try:
            await main(channel, params)
        except Exception as error:
            channel.send("error", message=repr(error), traceback=traceback.format_exc())
            raise

    try:
        import uvloop
    except ImportError:
        asyncio.run(serve())
    else:
        # The load generator's own overhead is part of what it measures: keep it small,
        # with the same loop the API runs on (uvicorn picks uvloop when installed).
        uvloop.run(serve())
