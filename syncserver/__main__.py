"""Command line: ``syncserver [--host H] [--port P] [--db PATH | --backend URL] ...``.

Prints one line containing ``ws://HOST:PORT`` once it listens, then serves
until SIGINT or SIGTERM, when it closes every connection, commits what is
queued and exits 0. Every option can also come from an ``OPTISYNC_*``
environment variable (the command line wins). A mistake is one line on
stderr: exit code 2 for a wrong option, 1 for what failed at start (a port in
use, a database that cannot be opened, Redis down or not installed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import os
import signal
import socket
import sqlite3
import ssl
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .access import SpaceAccess, load_space_access, resolve_token
from .backends import is_redis_url
from .cli import (
    RUNTIME,
    CommandLineError,
    OneLineParser,
    bounded_float,
    bounded_int,
    fail,
    package_version,
)
from .config import ServerConfig
from .limits import MAX_FRAME_BYTES
from .logs import LOG_LEVELS, configure_logging
from .loop import loop_name, run

__all__ = ["ENV_PREFIX", "main", "parse_args", "server_config"]

ENV_PREFIX = "OPTISYNC_"
"""``--max-connections`` is also ``OPTISYNC_MAX_CONNECTIONS``, and so on."""

PROG = "syncserver"

_DEFAULTS = ServerConfig()


def _host(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (127.0.0.1, 0.0.0.0, ::, a name)")
    return text.strip()


def _backend(text: str) -> str:
    if text in ("sqlite", "memory"):
        return text
    if not is_redis_url(text):
        raise argparse.ArgumentTypeError(
            f"expected 'sqlite', 'memory' or redis://HOST:PORT/DB, got {text!r}"
        )
    try:
        urllib.parse.urlsplit(text).port  # noqa: B018 (the check is the parse)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{_redact(text)}: {exc}") from None
    return text


def _synchronous(text: str) -> str:
    if text.upper() not in ("FULL", "NORMAL"):
        raise argparse.ArgumentTypeError(f"expected FULL or NORMAL, got {text!r}")
    return text.upper()


def _log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return text.lower()


def _token(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _db_file(text: str) -> Path:
    # The folder must be there already: a typo in --db must not make folders.
    path = Path(text)
    folder = path.parent
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise argparse.ArgumentTypeError(
            f"{text}: the folder {folder} {problem}; create it first or choose another file"
        )
    return path


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


def _addresses(text: str) -> tuple[str, ...]:
    found = tuple(part.strip() for part in text.split(",") if part.strip())
    for address in found:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{address!r} is not an IP address") from None
    return found


def _space_access(text: str) -> SpaceAccess:
    try:
        return load_space_access(Path(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected 1/0, true/false, yes/no or on/off, got {text!r}")


@dataclass(frozen=True)
class _Option:
    """One server option: its flag, how to read it, its default and what it does."""

    flag: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    metavar: str | None = None
    shown_default: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


def _default_db() -> str:
    from .server import default_db_path

    return str(default_db_path())


_OPTIONS = (
    _Option("--host", _host, _DEFAULTS.host, "address to listen on", "HOST"),
    _Option("--port", bounded_int(0, 65535), 8765, "port to listen on; 0 picks a free one", "PORT"),
    _Option(
        "--db",
        _db_file,
        None,
        "the SQLite database file, in a folder that exists",
        "PATH",
        shown_default="the user data folder",
    ),
    _Option(
        "--backend",
        _backend,
        "sqlite",
        "where the registers live: 'sqlite' (the --db file), redis://HOST:PORT/DB "
        "to share them between several syncserver processes (needs optisync[redis]), "
        "or 'memory' (nothing kept; for tests)",
        "URL",
    ),
    _Option(
        "--allow-chaos", _flag, _DEFAULTS.allow_chaos, "accept the demo controls (chaos, observe)"
    ),
    _Option(
        "--token",
        _token,
        None,
        "shared secret every hello must carry; on a shared machine other users can read "
        "a command line, so prefer --token-file or the environment variable",
        "SECRET",
        "none",
    ),
    _Option(
        "--token-file",
        _existing_file,
        None,
        "file whose first line is the token (keep it readable by the server only)",
        "PATH",
        "none",
    ),
    _Option(
        "--require-device-secrets",
        _flag,
        _DEFAULTS.require_device_secrets,
        "refuse a hello without its device's secret (see syncserver/SECURITY.md)",
    ),
    _Option(
        "--space-access",
        _space_access,
        None,
        'TOML file saying which devices may join which space ([spaces] NAME = "*" '
        "or [device ids]); combine with --require-device-secrets (see syncserver/SECURITY.md)",
        "FILE",
        "every device may join every space",
    ),
    _Option(
        "--max-spaces-per-connection",
        bounded_int(1),
        _DEFAULTS.max_spaces_per_connection,
        "spaces one connection may join; one more hello gets too_many_spaces",
        "N",
    ),
    _Option("--certfile", _existing_file, None, "serve wss:// with this PEM chain", "PEM", "none"),
    _Option("--keyfile", _existing_file, None, "the PEM private key of --certfile", "PEM", "none"),
    _Option(
        "--max-connections", bounded_int(1), _DEFAULTS.max_connections, "open connections", "N"
    ),
    _Option(
        "--rate-limit", bounded_float(0), _DEFAULTS.rate_limit, "messages/s per connection", "N"
    ),
    _Option("--rate-burst", bounded_int(1), _DEFAULTS.rate_burst, "burst per connection", "N"),
    _Option(
        "--max-send-buffer",
        bounded_int(MAX_FRAME_BYTES),
        _DEFAULTS.max_send_buffer,
        "drop a connection with more unread pushes queued than this many bytes "
        "(it catches up when it reconnects)",
        "BYTES",
        shown_default=f"{_DEFAULTS.max_send_buffer} ({_DEFAULTS.max_send_buffer / 2**20:g} MiB)",
    ),
    _Option(
        "--max-total-send-buffer",
        bounded_int(MAX_FRAME_BYTES),
        _DEFAULTS.max_total_send_buffer,
        "bytes queued for all connections together; past it the connections with the "
        "most queued are dropped first",
        "BYTES",
        shown_default=f"{_DEFAULTS.max_total_send_buffer / 2**20:g} MiB",
    ),
    _Option(
        "--max-connections-per-address",
        bounded_int(1),
        _DEFAULTS.max_connections_per_address,
        "open connections from one client address (HTTP 429 past it)",
        "N",
    ),
    _Option(
        "--address-rate-limit",
        bounded_float(0),
        _DEFAULTS.address_rate_limit,
        "messages/s one client address may sustain; past it its frames are read slower",
        "N",
    ),
    _Option(
        "--address-rate-burst",
        bounded_int(1),
        _DEFAULTS.address_rate_burst,
        "burst per client address",
        "N",
    ),
    _Option(
        "--catchup-rate",
        bounded_float(0),
        _DEFAULTS.catchup_rate,
        "snapshot bytes/s one client address may ask for; past it hellos wait",
        "BYTES",
        shown_default=f"{_DEFAULTS.catchup_rate / 2**20:g} MiB",
    ),
    _Option(
        "--catchup-burst",
        bounded_int(1),
        _DEFAULTS.catchup_burst,
        "snapshot bytes one client address may ask for at once",
        "BYTES",
        shown_default=f"{_DEFAULTS.catchup_burst / 2**20:g} MiB",
    ),
    _Option(
        "--limit-loopback",
        _flag,
        _DEFAULTS.limit_loopback,
        "apply the per-address limits to loopback clients too",
    ),
    _Option(
        "--forwarded-allow",
        _addresses,
        _DEFAULTS.forwarded_allow,
        "comma-separated reverse proxy IPs whose X-Forwarded-For names the client",
        "IP,...",
        "none",
    ),
    _Option(
        "--synchronous",
        _synchronous,
        _DEFAULTS.synchronous,
        "SQLite synchronous mode: FULL fsyncs every commit and keeps acked writes "
        "through power loss; NORMAL only through a crash of the process",
        "FULL|NORMAL",
    ),
    _Option(
        "--no-uvloop",
        _flag,
        False,
        "run on asyncio's own event loop even when uvloop is installed",
    ),
    _Option(
        "--log-level", _log_level, "info", f"one of {', '.join(LOG_LEVELS)}; -v is debug", "LEVEL"
    ),
)


def _build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "optisync sync server: durable last-write-wins registers with push.\n\n"
            "The wire protocol is documented in PROTOCOL.md, installed beside this\n"
            "package (syncserver/PROTOCOL.md); the backends in syncserver/BACKENDS.md,\n"
            "the threat model and safe deployment in syncserver/SECURITY.md."
        ),
        epilog=(
            "Every option can also be set by the environment variable named after it\n"
            f"(--max-connections is {ENV_PREFIX}MAX_CONNECTIONS); the command line wins.\n"
            "GET /healthz and GET /metrics (Prometheus) are served on the same port."
        ),
    )
    for option in _OPTIONS:
        shown = option.shown_default
        if shown is None:
            shown = str(option.default).removesuffix(".0")
        if option.parse is _flag:
            text = f"{option.help} (default off; env {option.env}=1)"
            parser.add_argument(option.flag, action="store_true", default=None, help=text)
            continue
        parser.add_argument(
            option.flag,
            type=option.parse,
            default=None,
            metavar=option.metavar,
            help=f"{option.help} (default {shown}; env {option.env})",
        )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages (--log-level debug)"
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {package_version()}",
        help="print the version and exit",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options: the command line, else the environment, else the defaults."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    token_on_command_line = args.token is not None
    for option in _OPTIONS:
        if getattr(args, option.dest) is not None:
            continue
        value = option.default
        text = os.environ.get(option.env, "")
        if text:
            try:
                value = option.parse(text)
            except (argparse.ArgumentTypeError, ValueError) as exc:
                parser.error(f"environment variable {option.env}={text!r}: {exc}")
        setattr(args, option.dest, value)
    if args.verbose:
        args.log_level = "debug"
    if args.token_file is not None and not token_on_command_line:
        args.token = None  # --token-file wins over OPTISYNC_TOKEN
    try:
        args.token = resolve_token(args.token, args.token_file, environ={})
    except ValueError as exc:
        parser.error(str(exc))
    if args.backend != "sqlite" and args.db is not None:
        parser.error(f"--db is the SQLite file; --backend {args.backend} keeps none, drop --db")
    try:
        args.config = server_config(args)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The :class:`ServerConfig` the parsed options describe."""
    return ServerConfig(
        host=args.host,
        port=args.port,
        db_path=args.db,
        backend=None if args.backend == "sqlite" else args.backend,
        allow_chaos=args.allow_chaos,
        token=args.token,
        max_connections=args.max_connections,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        synchronous="NORMAL" if args.synchronous == "NORMAL" else "FULL",
        max_send_buffer=args.max_send_buffer,
        require_device_secrets=args.require_device_secrets,
        certfile=args.certfile,
        keyfile=args.keyfile,
        max_total_send_buffer=args.max_total_send_buffer,
        max_connections_per_address=args.max_connections_per_address,
        address_rate_limit=args.address_rate_limit,
        address_rate_burst=args.address_rate_burst,
        catchup_rate=args.catchup_rate,
        catchup_burst=args.catchup_burst,
        limit_loopback=args.limit_loopback,
        forwarded_allow=args.forwarded_allow,
        max_spaces_per_connection=args.max_spaces_per_connection,
        space_access=args.space_access,
    )


def _redact(url: str) -> str:
    """The URL without a password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _tls_problem(args: argparse.Namespace) -> str | None:
    """Why --certfile/--keyfile cannot serve TLS, or None when they can."""
    if args.certfile is None:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.certfile, args.keyfile)
    except OSError as exc:  # ssl.SSLError included
        files = f"--certfile {args.certfile}"
        if args.keyfile is not None:
            files += f" --keyfile {args.keyfile}"
        if isinstance(exc, ssl.SSLError):
            reason = str(exc.reason or exc).lower().replace("_", " ")
        else:
            reason = f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)
        return (
            f"cannot serve TLS with {files}: {reason}; give a readable PEM certificate "
            "chain and the private key that matches it"
        )
    return None


def _explain(exc: BaseException, args: argparse.Namespace) -> str | None:
    """One line saying why the server could not start, or None for a bug."""
    host, port = args.host, args.port
    # Checked first: a key file we may not read is an OSError like a privileged port.
    if isinstance(exc, OSError) and (problem := _tls_problem(args)) is not None:
        return problem
    if is_redis_url(args.backend):
        redis_url = _redact(args.backend)
        if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == "redis":
            return (
                "the Redis backend needs the redis package: pip install redis hiredis "
                "(or the redis extra: pip install '.[redis]' in an optisync checkout)"
            )
        if type(exc).__module__.startswith("redis"):
            reason = str(exc).rstrip(". ")
            return f"cannot use Redis at {redis_url}: {reason}; start Redis or fix --backend"
        if isinstance(exc, TimeoutError):
            return f"Redis at {redis_url} did not answer in time; check it is up and reachable"
    db = args.db if args.db is not None else _default_db()
    if isinstance(exc, sqlite3.Error):
        return f"cannot open the database {db}: {exc}; pass a writable file with --db"
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host!r}: {exc.strerror}; check --host"
    if isinstance(exc, OSError) and exc.filename is not None:
        reason = exc.strerror or str(exc)
        return f"cannot open the database {db}: {reason} ({exc.filename}); pass a writable --db"
    if isinstance(exc, OSError):
        if exc.errno == errno.EADDRINUSE:
            return (
                f"port {port} on {host} is already in use: stop the other server "
                "or choose another --port (0 picks a free one)"
            )
        if exc.errno == errno.EACCES:
            return f"not allowed to listen on {host}:{port}: choose a --port above 1023"
        if exc.errno == errno.EADDRNOTAVAIL:
            return f"cannot listen on {host}: no such address on this machine; check --host"
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


async def _run(args: argparse.Namespace) -> None:
    from .server import SyncServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    try:
        server = await SyncServer.start(config=args.config)
    except Exception as exc:
        message = _explain(exc, args)
        if message is None:
            raise
        raise CommandLineError(message, RUNTIME) from exc
    try:
        print(
            f"syncserver listening on {server.url} ({server.backend}, revision "
            f"{server.revision}, {loop_name(not args.no_uvloop)})",
            flush=True,
        )
        await stop.wait()
    finally:
        # Shutting down: a repeated SIGINT/SIGTERM must not cut the clean exit short.
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)
            signal.signal(signum, signal.SIG_IGN)
        await server.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m syncserver`` and the ``syncserver`` script."""
    args = parse_args(argv)
    configure_logging(args.log_level)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run(_run(args), use_uvloop=not args.no_uvloop)
    except CommandLineError as exc:
        fail(PROG, str(exc), exc.code)
    sys.exit(0)


if __name__ == "__main__":
    main()
