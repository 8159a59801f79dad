"""The worker's metrics endpoint: the pool processes' counters (tasks/worker/metrics.py), summed,
and the queue depths read from Redis at each scrape.

Apart from tasks/worker/metrics.py because it reads the queues through tasks/worker/app.py, which
runs tasks and so imports the counters: kept together, the two made an import cycle.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from persistence.settings import Settings
from tasks.worker.app import queue_depths

# Set by `aitasks worker --metrics-port` before prometheus_client is imported.
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"


class QueueDepths(Collector):
    """Messages waiting per queue, read from Redis at each scrape."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "aitasks_queue_depth", "Messages waiting in each queue.", labels=["queue"]
        )
        try:
            depths = queue_depths(self._settings)
        except Exception:
            depths = {}
        for queue, depth in depths.items():
            family.add_metric([queue], depth)
        yield family


def serve(settings: Settings, port: int, host: str) -> None:
    """Serve the pool processes' metrics, summed, and the queue depths, on `port`."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=os.environ[MULTIPROCESS_DIRECTORY])
    registry.register(QueueDepths(settings))
    start_http_server(port, addr=host, registry=registry)
