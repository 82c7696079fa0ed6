"""The list of checks and what each one is given to run.

A check is an async function taking a :class:`Context`, registered with
:func:`check`. It passes by returning and fails by raising
:class:`~syncserver.conformance.peer.CheckFailed` (``expect``) or timing out.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .launcher import Launcher
from .peer import CheckFailed, Peer

__all__ = ["CHECKS", "Check", "Context", "check"]

CheckFunction = Callable[["Context"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Check:
    """One rule of PROTOCOL.md, checked against a live server."""

    name: str
    doc: str
    run: CheckFunction
    needs_chaos: bool = False
    """Needs the demo controls on the server under test (``--allow-chaos``)."""
    needs_launcher: bool = False
    """Starts servers of its own (needs ``--start-server``)."""
    needs_fresh_data: bool = False
    """Starts servers on new data (needs ``{dir}`` in the ``--start-server`` command)."""


CHECKS: list[Check] = []


def check(
    *, needs_chaos: bool = False, needs_launcher: bool = False, needs_fresh_data: bool = False
) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check; its name is the function's, its description the docstring."""

    def register(function: CheckFunction) -> CheckFunction:
        doc = (function.__doc__ or "").strip().splitlines()[0]
        CHECKS.append(
            Check(function.__name__, doc, function, needs_chaos, needs_launcher, needs_fresh_data)
        )
        return function

    return register


@dataclass
class Context:
    """What a check runs against: the server's URL, a timeout, a launcher."""

    url: str
    timeout: float
    launcher: Launcher | None = None
    chaos: bool = False
    """The server under test accepts demo controls."""
    _peers: list[Peer] = field(default_factory=list)
    _run: str = field(default_factory=lambda: secrets.token_hex(4))
    _keys: int = 0

    def key(self, label: str = "k") -> str:
        """A key no earlier check or run has written."""
        self._keys += 1
        return f"conformance/{self._run}/{label}{self._keys}"

    def space(self, label: str = "s") -> str:
        """A space no earlier check or run has used."""
        self._keys += 1
        return f"conformance-{self._run}-{label}{self._keys}"

    @staticmethod
    def device_id() -> int:
        """A fresh device id, chosen the way PROTOCOL.md tells devices to."""
        return secrets.randbits(53) or 1

    async def connect(self, url: str | None = None, **options: Any) -> Peer:
        """A new connection (closed after the check)."""
        peer = await Peer.connect(url or self.url, self.timeout, **options)
        self._peers.append(peer)
        return peer

    async def device(self, device_id: int | None = None, **hello: Any) -> tuple[Peer, int]:
        """A connection that said hello (and read its snapshot); it and its id."""
        peer = await self.connect()
        device_id = self.device_id() if device_id is None else device_id
        await peer.hello(device_id, **hello)
        return peer, device_id

    def require_launcher(self) -> Launcher:
        if self.launcher is None:
            raise CheckFailed("needs --start-server")
        return self.launcher

    async def close(self) -> None:
        for peer in self._peers:
            await peer.close()
        self._peers.clear()
