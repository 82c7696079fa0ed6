"""The numbers a sync server keeps about itself, for ``GET /metrics``.

Plain counters the core bumps in a few places (a connection, a commit, an
error reply); nothing here formats or serves them (``observability.py`` does,
at scrape time). Counting must cost next to nothing on the commit path, so
the commit latency histogram is an array of bucket counts, not a metrics
library's object with a lock.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from typing import Final

from .backends import Write

__all__ = ["LATENCY_BUCKETS", "ServerStats"]

LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds (seconds) of the commit latency histogram's buckets; one more is +Inf."""


class ServerStats:
    """Counters since the server started; see the module docstring."""

    __slots__ = (
        "commit_failures",
        "connections",
        "errors",
        "failing",
        "latency_counts",
        "latency_sum",
        "pushes",
        "writes",
    )

    def __init__(self) -> None:
        self.connections = 0
        """Connections accepted."""
        self.writes = 0
        """Writes committed (this process' and, on a shared backend, the others')."""
        self.pushes = 0
        """Pushes delivered: one per committed write per connection in its space."""
        self.commit_failures = 0
        """Writes the backend could not make durable."""
        self.failing = False
        """Whether the backend's latest commit failed (cleared by the next that succeeds)."""
        self.errors: Counter[str] = Counter()
        """``error`` replies sent, by code: the frames refused."""
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        """Writes per latency bucket (not cumulative); the last is above every bound."""
        self.latency_sum = 0.0

    def committed(self, writes: Sequence[Write], now: float, pushes: int) -> None:
        """``writes`` are durable at ``now``; ``pushes`` pushes of them go out.

        A write this process received carries ``received`` (the clock when its
        ``set`` arrived): the time to ``now`` is its commit latency.
        """
        self.failing = False
        self.writes += len(writes)
        self.pushes += pushes
        counts = self.latency_counts
        total = 0.0
        for write in writes:
            received: float | None = getattr(write, "received", None)
            if received is not None:
                latency = now - received
                total += latency
                counts[bisect_left(LATENCY_BUCKETS, latency)] += 1
        self.latency_sum += total

    def failed(self, writes: Sequence[Write]) -> None:
        """The backend could not make ``writes`` durable."""
        self.failing = True
        self.commit_failures += len(writes)
