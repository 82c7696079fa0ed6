"""Who may use a server, and how much: tokens, device secrets, per-address limits.

Nothing here does I/O. ``SECURITY.md`` (beside this module) describes the threat
model; ``PROTOCOL.md`` ("Credentials") the handshake.

* The shared token and each device's secret are compared in constant time
  (:func:`secrets_match`). A device secret is stored only as its SHA-256
  (:func:`secret_digest`): secrets are 256 random bits made by the device, so
  a slow password hash would add cost and no strength.
* Every client address (the peer's IP, or what the shell says it is) has an
  :class:`AddressLimits`: how many connections it holds, a message budget
  shared by all its connections (past it the shell stops reading from them
  for a while; nothing is refused), and a budget of catch-up bytes (a
  ``hello`` is answered once the address' byte budget is back in credit, and
  the snapshot's size is charged to it).
* Spaces: a ``--space-access`` file (TOML) says which devices may join which
  space (:func:`load_space_access`); device ids are only proven by device
  secrets, so it goes with ``--require-device-secrets``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .protocol import MAX_SPACE_LENGTH

__all__ = [
    "TOKEN_ENV",
    "AddressLimits",
    "DebtBucket",
    "SpaceAccess",
    "load_space_access",
    "parse_space_access",
    "resolve_token",
    "secret_digest",
    "secrets_match",
]

SpaceAccess = Mapping[str, frozenset[int] | None]
"""Space → the device ids that may join it (None: every device)."""

_INT64 = range(-(2**63), 2**63)

TOKEN_ENV = "OPTISYNC_TOKEN"
"""The environment variable that holds the shared token (server and app)."""


def resolve_token(
    token: str | None,
    token_file: Path | None,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """The shared token from ``--token``, ``--token-file`` or ``OPTISYNC_TOKEN``
    (in that order; giving both flags is a mistake). A token file holds the
    token on its first line. Raises ``ValueError`` with a one-line reason."""
    if token is not None and token_file is not None:
        raise ValueError("give --token or --token-file, not both")
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the token file {token_file}: {exc}") from None
        lines = text.splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise ValueError(f"the token file {token_file} is empty")
        return token
    if token is not None:
        if not token:
            raise ValueError("--token must not be empty")
        return token
    value = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
    return value or None


def secrets_match(given: str | None, expected: str) -> bool:
    """Whether ``given`` is ``expected``, in time that does not depend on where they differ."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def secret_digest(secret: str) -> bytes:
    """What the server stores for a device secret (SHA-256 of its UTF-8)."""
    return hashlib.sha256(secret.encode()).digest()


class DebtBucket:
    """A token bucket that may go into debt: ``rate`` per second, at most
    ``burst`` saved up. A spender that overdraws waits :meth:`wait` seconds."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not rate > 0 or not burst > 0:
            raise ValueError("rate and burst must be > 0")
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    def _refill(self, now: float) -> float:
        tokens = self._tokens + (now - self._stamp) * self._rate
        self._stamp = now
        if tokens > self._burst:
            tokens = self._burst
        self._tokens = tokens
        return tokens

    def spend(self, amount: float, now: float) -> None:
        """Take ``amount`` (the balance may go below zero)."""
        self._tokens = self._refill(now) - amount

    def wait(self, now: float) -> float:
        """Seconds until the balance is back to zero (0.0 if it is not negative)."""
        tokens = self._refill(now)
        return 0.0 if tokens >= 0 else -tokens / self._rate


class AddressLimits:
    """What one client address may still do; see the module docstring."""

    __slots__ = ("catchup", "connections", "messages")

    def __init__(
        self,
        now: float,
        *,
        message_rate: float,
        message_burst: float,
        catchup_rate: float,
        catchup_burst: float,
    ) -> None:
        self.connections = 0
        self.messages = DebtBucket(message_rate, message_burst, now)
        self.catchup = DebtBucket(catchup_rate, catchup_burst, now)


def parse_space_access(text: str, source: str = "the space access file") -> SpaceAccess:
    """Read a space access table (TOML); a mistake raises ``ValueError`` with
    one line naming ``source`` and what to fix.

    The file has one table, ``[spaces]``: each space is ``"*"`` (every device)
    or a list of device ids.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"spaces"})
    if unknown:
        raise ValueError(f"{source}: unknown table or key {unknown[0]!r}; only [spaces] is read")
    table = document.get("spaces")
    if not isinstance(table, dict):
        raise ValueError(f'{source}: needs a [spaces] table (space = "*" or [device ids])')
    access: dict[str, frozenset[int] | None] = {}
    for space, devices in table.items():
        if not 1 <= len(space) <= MAX_SPACE_LENGTH:
            raise ValueError(
                f"{source}: space names are 1 to {MAX_SPACE_LENGTH} characters, not {space!r}"
            )
        access[space] = _devices(devices, f"{source}: spaces.{space}")
    return access


def _devices(value: Any, where: str) -> frozenset[int] | None:
    if value == "*":
        return None
    if isinstance(value, list) and all(type(item) is int and item in _INT64 for item in value):
        return frozenset(value)
    raise ValueError(f'{where} must be "*" or a list of device ids (64-bit integers)')


def load_space_access(path: Path) -> SpaceAccess:
    """:func:`parse_space_access` of the file at ``path`` (UTF-8)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot read the space access file {path}: {reason}") from None
    return parse_space_access(text, str(path))
