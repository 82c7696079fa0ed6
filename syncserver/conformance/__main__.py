"""``python -m syncserver.conformance ws://HOST:PORT``: check a server against PROTOCOL.md."""

from __future__ import annotations

import argparse
import asyncio
import sys

from .registry import CHECKS
from .runner import Outcome, run_checks, select

__all__ = ["main", "parse_args"]

_EPILOG = """\
Prints one line per check (PASS, FAIL with the reason, or SKIP with why it
could not run) and ends with the line "N passed, M failed". Exits 1 when a
check failed, 2 on a usage error, else 0.

Run it against a server nobody else writes to meanwhile: it writes keys under
"conformance/", and a few checks use the demo controls, which act server-wide.
Checks of the demo controls and the observer feed need the server to accept
them (--allow-chaos on this project's server); otherwise they are skipped.

--start-server CMD lets the kit start servers of its own for the rules that
need particular options (token, connection/rate/send-buffer limits, space
access and the spaces per connection, restart on the same data, shutdown).
CMD must start a server that prints a line holding ws://HOST:PORT once it
listens, and accept the options PROTOCOL.md lists, which the kit appends:
--token T, --allow-chaos, --max-connections N, --rate-limit N, --rate-burst N,
--max-send-buffer BYTES, --require-device-secrets,
--max-connections-per-address N, --limit-loopback, --space-access FILE (a TOML
file the kit writes), --max-spaces-per-connection N.
Every "{dir}" in CMD becomes a fresh empty directory per server (the same one
when a check restarts it), so it can keep its data there, e.g.:

  python -m syncserver.conformance ws://127.0.0.1:8765 \\
      --start-server 'python -m syncserver --port 0 --db {dir}/sync.sqlite3'
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m syncserver.conformance",
        description="Check that a sync server speaks the optisync protocol (PROTOCOL.md).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", nargs="?", help="the server under test, ws://HOST:PORT")
    parser.add_argument(
        "--start-server", metavar="CMD", help="command that starts another server (see below)"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="run only the checks whose name contains TEXT (repeatable)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for each expected frame (default 5)",
    )
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    args = parser.parse_args(argv)
    if not args.list and not args.url:
        parser.error("the server's URL is required (ws://HOST:PORT)")
    if args.url and not args.url.startswith(("ws://", "wss://")):
        parser.error(f"not a websocket URL: {args.url!r} (expected ws://HOST:PORT)")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the checks; the exit status (1 when any failed)."""
    args = parse_args(argv)
    checks = select(args.only)
    if args.list:
        for item in CHECKS:
            print(f"{item.name}: {item.doc}")
        return 0

    def report(outcome: Outcome) -> None:
        print(outcome.line(), flush=True)

    outcomes = asyncio.run(
        run_checks(
            args.url, checks, wait=args.timeout, start_server=args.start_server, report=report
        )
    )
    passed = sum(o.status == "PASS" for o in outcomes)
    failed = sum(o.status == "FAIL" for o in outcomes)
    skipped = sum(o.status == "SKIP" for o in outcomes)
    if skipped:
        print(f"({skipped} skipped)")
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
