"""Command line: ``python -m syncserver [--host H] [--port P] [--db PATH | --backend URL] ...``.

Prints one line containing ``ws://HOST:PORT`` once it listens, then serves
until SIGINT or SIGTERM, when it closes every connection, commits what is
queued and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from .limits import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_SEND_BUFFER,
    DEFAULT_RATE_BURST,
    DEFAULT_RATE_LIMIT,
)
from .server import SyncServer, default_db_path

__all__ = ["main", "parse_args"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line options."""
    parser = argparse.ArgumentParser(
        prog="syncserver",
        description="optisync sync server: durable last-write-wins registers with push.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--db", type=Path, default=None, help=f"default {default_db_path()}")
    parser.add_argument(
        "--backend",
        default=None,
        metavar="URL",
        help=(
            "where the registers live: 'sqlite' (default, the --db file) or "
            "redis://HOST:PORT/DB to share them between several syncserver processes"
        ),
    )
    parser.add_argument("--allow-chaos", action="store_true", help="accept demo controls")
    parser.add_argument("--token", default=None, help="shared secret every hello must carry")
    parser.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS)
    parser.add_argument(
        "--rate-limit", type=float, default=DEFAULT_RATE_LIMIT, help="messages/s per connection"
    )
    parser.add_argument(
        "--rate-burst", type=int, default=DEFAULT_RATE_BURST, help="burst per connection"
    )
    parser.add_argument(
        "--max-send-buffer",
        type=int,
        default=DEFAULT_MAX_SEND_BUFFER,
        metavar="BYTES",
        help="drop a connection with more unread pushes queued than this (it catches up later)",
    )
    parser.add_argument(
        "--synchronous",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help=(
            "SQLite synchronous mode: FULL (default) fsyncs every commit and keeps acked "
            "writes through power loss; NORMAL only through a crash of the process"
        ),
    )
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    server = await SyncServer.start(
        args.host,
        args.port,
        args.db,
        backend=args.backend,
        allow_chaos=args.allow_chaos,
        token=args.token,
        max_connections=args.max_connections,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        synchronous=args.synchronous,
        max_send_buffer=args.max_send_buffer,
    )
    try:
        print(
            f"syncserver listening on {server.url} ({server.backend}, revision {server.revision})",
            flush=True,
        )
        await stop.wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m syncserver`` and the ``syncserver`` script."""
    args = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
