"""Per-connection rate limiting and the defaults of every limit.

The defaults are generous on purpose: an honest client that sends a few
thousand messages a second (a benchmark, a test suite, a sync burst after
reconnecting) never sees ``rate_limited``; a client stuck in a loop does.
"""

from __future__ import annotations

from typing import Final

from .protocol import MAX_FRAME_BYTES

__all__ = [
    "DEFAULT_ADDRESS_RATE_BURST",
    "DEFAULT_ADDRESS_RATE_LIMIT",
    "DEFAULT_CATCHUP_BURST",
    "DEFAULT_CATCHUP_RATE",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_CONNECTIONS_PER_ADDRESS",
    "DEFAULT_MAX_SEND_BUFFER",
    "DEFAULT_MAX_TOTAL_SEND_BUFFER",
    "DEFAULT_RATE_BURST",
    "DEFAULT_RATE_LIMIT",
    "MAX_FRAME_BYTES",
    "TokenBucket",
]

DEFAULT_RATE_LIMIT: Final = 5000.0
"""Messages per second each connection may sustain."""

DEFAULT_RATE_BURST: Final = 10_000
"""Messages a connection may send at once after being idle."""

DEFAULT_MAX_CONNECTIONS: Final = 10_000
"""Open connections; the next handshake is refused with HTTP 503."""

DEFAULT_MAX_SEND_BUFFER: Final = 8 * 1024 * 1024
"""Bytes queued for a connection that does not read; past it the connection is
dropped (the device reconnects and catches up with ``hello since``)."""


DEFAULT_MAX_TOTAL_SEND_BUFFER: Final = 128 * 1024 * 1024
"""Bytes queued for all connections together; past it the connections with the
most queued are dropped first, so slow readers cannot exhaust the server's memory."""

DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: Final = 1000
"""Open connections from one client address (a household or an office behind
one NAT stays far below it)."""

DEFAULT_ADDRESS_RATE_LIMIT: Final = 2000.0
"""Messages per second one client address may sustain over all its
connections; past it the server reads its frames more slowly (nothing is refused)."""

DEFAULT_ADDRESS_RATE_BURST: Final = 10_000
"""Messages one client address may send at once after being idle."""

DEFAULT_CATCHUP_RATE: Final = 4 * 1024 * 1024
"""Snapshot bytes per second one client address may ask for (``hello``):
encoding them is what a catch-up costs the server's one thread."""

DEFAULT_CATCHUP_BURST: Final = 16 * 1024 * 1024
"""Snapshot bytes one client address may ask for at once after being idle. A
snapshot bigger than this is still sent (the budget may go into debt); the
address' next hello then waits until the debt is paid."""


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; one per message."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one; False means the message is refused."""
        tokens = self._tokens + (now - self._stamp) * self._rate
        self._stamp = now
        if tokens > self._burst:
            tokens = self._burst
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True
