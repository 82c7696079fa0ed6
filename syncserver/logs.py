"""Logging for optisync's commands: timestamps, levels, and no floods.

A backend that is down reports the same failure on every retry (several per
second). :class:`RepeatFilter` lets the first warning or error of each kind
through, holds back the same message (same logger, level and format string)
for ``interval`` seconds, then lets one through again with how many were
held. Lower levels are events (a device connecting), each worth its line.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Final, TextIO

__all__ = ["LOG_FORMAT", "LOG_LEVELS", "RepeatFilter", "configure_logging"]

LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
"""The names ``--log-level`` accepts, quietest last."""


class RepeatFilter(logging.Filter):
    """Pass a repeated warning or error at most once per ``interval`` seconds, with a count."""

    def __init__(self, interval: float = 30.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.interval = interval
        self._clock = clock
        # (logger, level, format string) -> (when it last passed, how many held since)
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.interval:
            self._seen[key] = (seen[0], seen[1] + 1)
            return False
        held = 0 if seen is None else seen[1]
        self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last {self.interval:g} s)"
        return True


def configure_logging(
    level: str, *, stream: TextIO | None = None, repeat_interval: float = 30.0
) -> None:
    """Log to stderr at ``level`` (a name from :data:`LOG_LEVELS`) with time and level."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RepeatFilter(repeat_interval))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # websockets logs every failed handshake (a port scan, a health probe) with a traceback.
    logging.getLogger("websockets").setLevel(max(root.level, logging.WARNING))
