"""``python -m app`` / ``optisync-demo``: the desktop demo.

One qasync event loop runs Qt, the core, every device's link and the embedded
server. The boot coroutine creates the resources, waits until the app quits
(``aboutToQuit`` or the last window closing sets an event) and closes them.

A mistake on the command line is one line on stderr (exit 2), and so is
what stops the demo from starting (exit 1): Qt not installed, no display,
a data folder it cannot write.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import platformdirs

from app.link.urls import check_server_url
from app.ui.space_names import DEFAULT_SPACE, MAX_SPACES, check_space_name, parse_space_list
from syncserver.access import resolve_token
from syncserver.cli import (
    CommandLineError,
    OneLineParser,
    bounded_int,
    fail,
    package_version,
)
from syncserver.logs import LOG_LEVELS, configure_logging

__all__ = ["main", "parse_args", "run", "server_url", "space_name", "space_names"]

PROG = "optisync-demo"


def server_url(text: str) -> str:
    """A ``--server`` value checked: ws:// or wss://, a host, a port that fits."""
    try:
        return check_server_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def space_name(text: str) -> str:
    """A ``--space`` value checked: 1 to 128 characters."""
    try:
        return check_space_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def space_names(text: str) -> tuple[str, ...]:
    """A ``--spaces`` value checked: two or more distinct names separated by commas."""
    try:
        return parse_space_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return text.lower()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(
        prog=PROG,
        description="Several devices liking items through one sync server: optimistic "
        "updates, coalesced requests and pushes you can watch.",
    )
    parser.add_argument(
        "--devices",
        type=bounded_int(0, 64),
        default=2,
        metavar="N",
        help="device windows to open (default 2)",
    )
    spaces = parser.add_mutually_exclusive_group()
    spaces.add_argument(
        "--space",
        type=space_name,
        metavar="NAME",
        help=f'the space every device window joins (default "{DEFAULT_SPACE}"): an '
        "account, a document, a room",
    )
    spaces.add_argument(
        "--spaces",
        type=space_names,
        metavar="A,B",
        help=f"2 to {MAX_SPACES} spaces the device windows take turns between (A, B, A, …): "
        "a write reaches only the devices of its space",
    )
    parser.add_argument(
        "--server",
        type=server_url,
        action="append",
        default=[],
        metavar="ws://HOST:PORT",
        help="join this server instead of embedding one (repeat for failover)",
    )
    parser.add_argument(
        "--latency",
        type=bounded_int(0, 60_000),
        default=600,
        metavar="MS",
        help="the embedded server's simulated round trip (default 600, so taps visibly coalesce)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="PATH",
        help="where devices and the embedded server keep state (default the user data folder)",
    )
    parser.add_argument(
        "--items",
        type=bounded_int(1, 1_000_000),
        metavar="N",
        help="catalogue size (extra items reuse the icons), e.g. 1000",
    )
    parser.add_argument(
        "--screenshot", type=Path, metavar="PATH", help="render the windows to one PNG and exit"
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="file holding the --server's shared token (default: env OPTISYNC_TOKEN)",
    )
    parser.add_argument(
        "--cafile",
        type=Path,
        metavar="PATH",
        help="PEM file of the CAs to trust for wss:// servers (default: the system's)",
    )
    parser.add_argument(
        "--log-level",
        type=_log_level,
        default="info",
        metavar="LEVEL",
        help=f"one of {', '.join(LOG_LEVELS)} (default info)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {package_version()}",
        help="print the version and exit",
    )
    args = parser.parse_args(argv)
    if args.verbose:
        args.log_level = "debug"
    if args.spaces is None:
        args.spaces = (args.space if args.space is not None else DEFAULT_SPACE,)
    if args.data_dir is not None and args.data_dir.exists() and not args.data_dir.is_dir():
        parser.error(f"--data-dir {args.data_dir} is a file; give a folder")
    if args.screenshot is not None:
        if args.screenshot.suffix.lower() != ".png":
            parser.error(f"--screenshot {args.screenshot}: the file name must end in .png")
        if not args.screenshot.parent.is_dir():
            parser.error(f"--screenshot {args.screenshot}: no folder {args.screenshot.parent}")
    try:
        args.token = resolve_token(None, args.token_file)
    except ValueError as exc:
        parser.error(str(exc))
    if args.cafile is not None and not args.cafile.is_file():
        parser.error(f"--cafile {args.cafile}: no such file")
    return args


async def run(args: argparse.Namespace) -> int:
    """The boot coroutine: create everything, wait for quit, close everything."""
    from PySide6.QtWidgets import QApplication

    from app.ui.demo import Demo
    from app.ui.screenshot import render_windows, screenshot_windows, settle, stage_scene

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    quit_requested = asyncio.Event()
    app.aboutToQuit.connect(quit_requested.set)
    # Quitting is ours to do, after the resources are closed (not Qt's on the last close).
    app.setQuitOnLastWindowClosed(False)
    app.lastWindowClosed.connect(quit_requested.set)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, quit_requested.set)

    with contextlib.ExitStack() as stack:
        data_dir = args.data_dir
        if data_dir is None and args.screenshot is not None:
            # A fresh scene for screenshots, whatever the user's demo state holds.
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="optisync-")))
        if data_dir is None:
            data_dir = platformdirs.user_data_path("optisync", appauthor=False) / "demo"
        demo = Demo(
            data_dir=data_dir,
            server_urls=args.server,
            latency_ms=args.latency,
            items=args.items,
            spaces=args.spaces,
            token=args.token,
            cafile=args.cafile,
            # Screenshots are offscreen: their windows take no room on anyone's screen.
            places_dir=None if args.screenshot is not None else _places_dir(),
        )
        try:
            try:
                await demo.start(args.devices)
            except (OSError, sqlite3.Error) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise CommandLineError(
                    f"cannot keep the demo's state in {data_dir}: {reason}; "
                    "choose a writable --data-dir"
                ) from exc
            if demo.server is not None:
                print(f"optisync sync server listening on {demo.server.url}", flush=True)
            if args.screenshot is not None:
                demo.arrange(fit=False)  # the offscreen screen is small; keep full sizes
                await stage_scene(demo)
                await settle()
                render_windows(screenshot_windows(demo), args.screenshot)
                print(f"screenshot written to {args.screenshot}", flush=True)
                return 0
            await quit_requested.wait()
        finally:
            await demo.close()
    return 0


def _places_dir() -> Path:
    """Where the demo processes of this user say where their windows are."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no XDG_RUNTIME_DIR: platformdirs picks a /tmp folder
        return platformdirs.user_runtime_path("optisync", appauthor=False) / "windows"


def _check_display(args: argparse.Namespace) -> None:
    """Qt aborts the process without a display; render offscreen or say so in one line."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    if args.screenshot is not None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no screen
        return
    raise CommandLineError(
        "no display to open windows on: run it in a desktop session "
        "(or QT_QPA_PLATFORM=offscreen to run it without windows)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m app`` and the ``optisync-demo`` script."""
    args = parse_args(argv)
    configure_logging(args.log_level)
    try:
        # A missing Qt is checked first: without it no display would help.
        try:
            import qasync
            from PySide6.QtWidgets import QApplication
        except ImportError as exc:
            raise CommandLineError(
                "the demo needs PySide6 and qasync, which are not installed here: install "
                "optisync with its demo extra (pip install '.[demo]' in an optisync checkout)"
            ) from exc
        _check_display(args)
        from app.ui.theme import apply_theme

        app = QApplication.instance() or QApplication([sys.argv[0]])
        assert isinstance(app, QApplication)
        app.setApplicationName("optisync demo")
        app.setDesktopFileName("optisync-demo")
        apply_theme(app)
        # asyncio.run(..., loop_factory=qasync.QEventLoop) from 3.12 on; Runner is its 3.11 form.
        with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
            return runner.run(run(args))
    except CommandLineError as exc:
        fail(PROG, str(exc), exc.code)


if __name__ == "__main__":
    sys.exit(main())
