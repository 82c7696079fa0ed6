"""``GET /healthz`` and ``GET /metrics`` on the sync server's own port.

Both are plain HTTP requests answered from websockets' ``process_request``
hook, before any upgrade, so they need no second listener and never count
as connections.

* ``/healthz``: ``200 ok`` while the backend is reachable and the server is
  not shutting down; ``503`` with the reason otherwise (the latest commit
  failed, Redis does not answer a ping, the server is closing).
* ``/metrics``: the Prometheus text format, built at scrape time from the
  core's plain counters (:class:`~syncserver.stats.ServerStats`), so serving
  requests pays nothing for it: open connections, requests, writes, pushes,
  the commit latency histogram, bytes queued in send buffers, refused frames
  by error code, and the process' CPU and memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from http import HTTPStatus
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .core import ServerCore
from .stats import LATENCY_BUCKETS

__all__ = ["HEALTH_PATH", "METRICS_PATH", "Observability"]

logger = logging.getLogger(__name__)

HEALTH_PATH: Final = "/healthz"
METRICS_PATH: Final = "/metrics"
PING_TIMEOUT: Final = 2.0
"""Seconds a backend ping may take before ``/healthz`` calls the backend down."""


class _CoreCollector(Collector):
    """Reads the core's counters when Prometheus scrapes."""

    def __init__(self, core: ServerCore) -> None:
        self._core = core

    def collect(self) -> Iterator[Metric]:
        core = self._core
        stats = core.stats
        connections = list(core.connections.values())
        yield GaugeMetricFamily(
            "optisync_connections", "Open websocket connections.", value=len(connections)
        )
        yield GaugeMetricFamily(
            "optisync_devices",
            "Open connections bound to a device by a hello.",
            value=sum(1 for conn in connections if conn.device_id is not None),
        )
        yield CounterMetricFamily(
            "optisync_connections_accepted", "Connections accepted.", value=stats.connections
        )
        yield CounterMetricFamily(
            "optisync_requests", "set and get requests received.", value=core.requests_received
        )
        yield GaugeMetricFamily(
            "optisync_requests_in_flight",
            "Sets accepted and not yet acked or refused.",
            value=core.requests_in_flight,
        )
        yield CounterMetricFamily("optisync_writes", "Writes committed.", value=stats.writes)
        yield CounterMetricFamily(
            "optisync_pushes",
            "Pushes delivered (one per committed write per connection in its space).",
            value=stats.pushes,
        )
        yield CounterMetricFamily(
            "optisync_commit_failures",
            "Writes the backend could not make durable (answered unavailable).",
            value=stats.commit_failures,
        )
        yield CounterMetricFamily(
            "optisync_slow_connections_dropped",
            "Connections dropped for not reading their pushes.",
            value=core.slow_connections_dropped,
        )
        yield GaugeMetricFamily(
            "optisync_revision", "The newest committed revision.", value=core.revision
        )
        yield GaugeMetricFamily(
            "optisync_spaces", "Spaces that hold registers.", value=core.backend.spaces
        )
        yield GaugeMetricFamily(
            "optisync_spaces_joined",
            "Spaces at least one open connection gets the pushes of.",
            value=core.spaces_joined,
        )
        buckets: list[tuple[str, float]] = []
        running = 0
        bounds = [*map(repr, LATENCY_BUCKETS), "+Inf"]
        for bound, count in zip(bounds, stats.latency_counts, strict=True):
            running += count
            buckets.append((bound, running))
        yield HistogramMetricFamily(
            "optisync_commit_latency_seconds",
            "From a set's arrival to its write being durable.",
            buckets=buckets,
            sum_value=stats.latency_sum,
        )
        yield GaugeMetricFamily(
            "optisync_send_buffer_bytes",
            "Bytes written to connections and not yet taken by the network.",
            value=sum(_buffered(conn.peer) for conn in connections),
        )
        rejected = CounterMetricFamily(
            "optisync_rejected_frames",
            "Frames answered with an error reply, by error code.",
            labels=["code"],
        )
        for code, count in sorted(stats.errors.items()):
            rejected.add_metric([code], count)
        yield rejected


def _buffered(peer: object) -> int:
    buffered: Callable[[], int] | None = getattr(peer, "buffered", None)
    return buffered() if buffered is not None else 0


class Observability:
    """Answers ``/healthz`` and ``/metrics`` for one server's core."""

    def __init__(self, core: ServerCore, *, process_metrics: bool = True) -> None:
        self._core = core
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_CoreCollector(core))
        if process_metrics:
            ProcessCollector(namespace="optisync", registry=self.registry)

    def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Awaitable[Response] | Response | None:
        """The response for an observability path, or None to go on with the handshake."""
        path = request.path.split("?", 1)[0]
        if path == METRICS_PATH:
            return self.metrics()
        if path == HEALTH_PATH:
            return self.health()
        return None

    def metrics(self) -> Response:
        """The Prometheus text exposition of every metric."""
        return _response(HTTPStatus.OK, generate_latest(self.registry), CONTENT_TYPE_LATEST)

    async def health(self) -> Response:
        """200 while the backend is reachable, 503 with the reason otherwise."""
        problem = await self.problem()
        if problem is None:
            return _response(HTTPStatus.OK, b"ok\n")
        return _response(HTTPStatus.SERVICE_UNAVAILABLE, f"{problem}\n".encode())

    async def problem(self) -> str | None:
        """Why the server is not healthy, or None."""
        core = self._core
        if core.closing:
            return "shutting down"
        if core.stats.failing:
            return "the backend's latest commit failed"
        ping: Callable[[], Awaitable[object]] | None = getattr(core.backend, "ping", None)
        if ping is not None:
            try:
                await asyncio.wait_for(ping(), PING_TIMEOUT)
            except Exception as exc:
                return f"the backend does not answer: {exc or type(exc).__name__}"
        return None


def _response(status: HTTPStatus, body: bytes, content_type: str = "text/plain") -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)
