"""Every option of a sync server in one object, :class:`ServerConfig`.

``SyncServer.start()``, ``start_server()`` and ``serve()`` take the same
options as keywords and build a :class:`ServerConfig` from them, so an option
is declared (with its default) in one place only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from .access import SpaceAccess
from .limits import (
    DEFAULT_ADDRESS_RATE_BURST,
    DEFAULT_ADDRESS_RATE_LIMIT,
    DEFAULT_CATCHUP_BURST,
    DEFAULT_CATCHUP_RATE,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
    DEFAULT_MAX_SEND_BUFFER,
    DEFAULT_MAX_TOTAL_SEND_BUFFER,
    DEFAULT_RATE_BURST,
    DEFAULT_RATE_LIMIT,
)

__all__ = ["DEFAULT_MAX_SPACES_PER_CONNECTION", "ServerConfig", "Synchronous"]

DEFAULT_MAX_SPACES_PER_CONNECTION: Final = 64

Synchronous = Literal["FULL", "NORMAL"]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The options of one sync server; invalid values raise ``ValueError``."""

    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port."""
    db_path: Path | str | None = None
    """The SQLite file; None means :func:`syncserver.default_db_path`."""
    backend: str | None = None
    """``None``/``"sqlite"``, ``"memory"`` or a ``redis://HOST:PORT/DB`` URL."""
    allow_chaos: bool = False
    """Accept the wire demo controls (chaos, observe)."""
    token: str | None = None
    """Shared secret every hello must carry; None accepts every hello."""
    require_device_secrets: bool = False
    """Refuse (1008) a hello without a ``device_secret``; see PROTOCOL.md, "Credentials"."""
    certfile: Path | str | None = None
    """PEM certificate chain: serve ``wss://`` (needs ``keyfile`` unless the file holds it)."""
    keyfile: Path | str | None = None
    """PEM private key for ``certfile``."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    rate_limit: float = DEFAULT_RATE_LIMIT
    rate_burst: int = DEFAULT_RATE_BURST
    synchronous: Synchronous = "FULL"
    observe_interval: float = 0.05
    """Seconds between two observer states, at least."""
    max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER
    max_total_send_buffer: int = DEFAULT_MAX_TOTAL_SEND_BUFFER
    """Bytes queued for all connections together; past it the biggest are dropped."""
    max_connections_per_address: int = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
    address_rate_limit: float = DEFAULT_ADDRESS_RATE_LIMIT
    """Messages/s one client address may sustain; past it its frames are read slower."""
    address_rate_burst: int = DEFAULT_ADDRESS_RATE_BURST
    catchup_rate: float = DEFAULT_CATCHUP_RATE
    """Snapshot bytes/s one client address may ask for; past it hellos wait."""
    catchup_burst: int = DEFAULT_CATCHUP_BURST
    limit_loopback: bool = False
    """Apply the per-address limits to loopback peers too (off: a local
    benchmark or a same-host proxy without ``forwarded_allow`` is not throttled)."""
    forwarded_allow: tuple[str, ...] = ()
    """Peer addresses (reverse proxies) whose ``X-Forwarded-For`` names the client."""
    max_spaces_per_connection: int = DEFAULT_MAX_SPACES_PER_CONNECTION
    """Spaces one connection may join; a hello for one more gets ``too_many_spaces``."""
    space_access: SpaceAccess | None = None
    """Who may join which space (``--space-access``); None: every device, every space."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, not {self.port}")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if not self.rate_limit > 0:
            raise ValueError("rate_limit must be > 0")
        if self.rate_burst < 1:
            raise ValueError("rate_burst must be at least 1")
        if self.synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {self.synchronous!r}")
        if not self.observe_interval >= 0:
            raise ValueError("observe_interval must be >= 0")
        if self.max_send_buffer < 1:
            raise ValueError("max_send_buffer must be at least 1")
        if self.max_total_send_buffer < 1:
            raise ValueError("max_total_send_buffer must be at least 1")
        if self.max_connections_per_address < 1:
            raise ValueError("max_connections_per_address must be at least 1")
        if not self.address_rate_limit > 0 or not self.catchup_rate > 0:
            raise ValueError("address_rate_limit and catchup_rate must be > 0")
        if self.address_rate_burst < 1 or self.catchup_burst < 1:
            raise ValueError("address_rate_burst and catchup_burst must be at least 1")
        if self.keyfile is not None and self.certfile is None:
            raise ValueError("keyfile needs a certfile")
        if self.max_spaces_per_connection < 1:
            raise ValueError("max_spaces_per_connection must be at least 1")
        if self.token is not None and not self.token:
            raise ValueError("token must not be empty")

    @classmethod
    def from_options(cls, config: ServerConfig | None = None, **options: Any) -> ServerConfig:
        """``config`` (or the defaults) with the given options replaced; an
        unknown option name raises ``TypeError``."""
        base = config if config is not None else cls()
        return dataclasses.replace(base, **options) if options else base
