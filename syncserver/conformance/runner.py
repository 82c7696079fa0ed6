"""Running the checks in order and reporting one line each."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from websockets.exceptions import WebSocketException

from . import errors, feed, messages, ordering, servers, spaces  # noqa: F401  (register checks)
from .feed import reset_chaos
from .launcher import Launcher
from .peer import CheckFailed, Peer
from .registry import CHECKS, Check, Context

__all__ = ["Outcome", "run_checks", "select"]


@dataclass(frozen=True, slots=True)
class Outcome:
    check: Check
    status: str  # "PASS", "FAIL" or "SKIP"
    detail: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        text = f"{self.status} {self.check.name}"
        return f"{text}: {self.detail}" if self.detail else text


def select(patterns: Sequence[str]) -> list[Check]:
    """The checks whose name holds one of ``patterns`` (every check for none)."""
    return [c for c in CHECKS if not patterns or any(p in c.name for p in patterns)]


async def _accepts_demo_controls(url: str, wait: float) -> bool:
    peer = await Peer.connect(url, wait)
    try:
        reply = await peer.request({"type": "chaos"}, "chaos_state")
        if reply["type"] == "chaos_state":
            await reset_chaos(peer)
            return True
        return False
    finally:
        await peer.close()


async def run_checks(
    url: str,
    checks: Sequence[Check],
    *,
    wait: float,
    start_server: str | None,
    report: Callable[[Outcome], None],
) -> list[Outcome]:
    """Run ``checks`` one after another against ``url``; ``report`` gets each outcome.

    ``wait`` is how long to wait for any one expected frame.
    """
    chaos = False
    # Without an answer, every check will say why it cannot connect.
    with contextlib.suppress(OSError, TimeoutError, CheckFailed, WebSocketException):
        if any(item.needs_chaos for item in checks):
            chaos = await _accepts_demo_controls(url, wait)
    launcher = Launcher(start_server, wait) if start_server else None
    outcomes = []
    try:
        for item in checks:
            outcome = await _run_one(item, url, wait, launcher, chaos)
            outcomes.append(outcome)
            report(outcome)
    finally:
        if launcher is not None:
            await launcher.close()
    return outcomes


async def _run_one(
    item: Check, url: str, wait: float, launcher: Launcher | None, chaos: bool
) -> Outcome:
    if item.needs_chaos and not chaos:
        return Outcome(item, "SKIP", "the server refuses demo controls (run it with --allow-chaos)")
    if item.needs_launcher and launcher is None:
        return Outcome(item, "SKIP", "starts servers of its own: give --start-server")
    if item.needs_fresh_data and launcher is not None and not launcher.uses_dir:
        return Outcome(item, "SKIP", "needs {dir} in the --start-server command (fresh data)")
    context = Context(url, wait, launcher, chaos)
    limit = wait * 6
    started = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            await item.run(context)
    except CheckFailed as exc:
        return Outcome(item, "FAIL", str(exc), time.monotonic() - started)
    except TimeoutError:
        return Outcome(item, "FAIL", f"did not finish in {limit:g} s", time.monotonic() - started)
    except (OSError, WebSocketException) as exc:
        return Outcome(item, "FAIL", f"{type(exc).__name__}: {exc}", time.monotonic() - started)
    except Exception as exc:  # a malformed reply the check did not foresee
        return Outcome(
            item,
            "FAIL",
            f"unexpected reply ({type(exc).__name__}: {exc})",
            time.monotonic() - started,
        )
    finally:
        await context.close()
    return Outcome(item, "PASS", "", time.monotonic() - started)
