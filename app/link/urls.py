"""Server URLs checked before any connection is tried, so a typo is one clear error."""

from __future__ import annotations

import urllib.parse

__all__ = ["check_server_url"]


def check_server_url(text: str) -> str:
    """``text`` stripped if it is a ws:// or wss:// URL with a host and a usable port;
    else ValueError saying what is wrong and how to write it."""
    try:
        parts = urllib.parse.urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a URL ({exc})") from None
    if parts.scheme in ("http", "https"):
        fixed = ("wss" if parts.scheme == "https" else "ws") + text.strip()[len(parts.scheme) :]
        raise ValueError(f"{text!r} is HTTP; a sync server speaks {fixed}")
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"{text!r} is not a ws:// or wss:// URL; write it as ws://HOST:PORT")
    if not parts.hostname:
        raise ValueError(f"{text!r} names no host; write it as ws://HOST:PORT")
    if port == 0:
        raise ValueError(f"{text!r}: port 0 cannot be connected to")
    return text.strip()
