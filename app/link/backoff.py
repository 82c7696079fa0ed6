"""Reconnect delays: exponential backoff with jitter.

Jitter spreads the reconnects of many devices after a server restart, so they
do not all knock at the same instant.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """``initial * factor**(attempt-1)``, capped at ``maximum``, then a random
    share of up to ``jitter`` of it taken off."""

    initial: float = 0.25
    factor: float = 2.0
    maximum: float = 10.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("need 0 <= initial <= maximum and factor >= 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt number ``attempt`` (1 = first retry)."""
        exponent = min(max(attempt - 1, 0), 64)  # large attempts must not overflow
        base = min(self.maximum, self.initial * self.factor**exponent)
        draw = (rng or random).random()
        return base * (1.0 - self.jitter * draw)
