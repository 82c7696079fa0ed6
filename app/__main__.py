"""``python -m app`` / ``optisync-demo``: the desktop demo.

One qasync event loop runs Qt, the core, every device's link and the embedded
server. The boot coroutine creates the resources, waits until the app quits
(``aboutToQuit`` or the last window closing sets an event) and closes them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import platformdirs
import qasync
from PySide6.QtWidgets import QApplication

__all__ = ["main", "parse_args", "run"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="optisync-demo",
        description="Several devices liking items through one sync server: optimistic "
        "updates, coalesced requests and pushes you can watch.",
    )
    parser.add_argument(
        "--devices", type=int, default=2, metavar="N", help="device windows to open (default 2)"
    )
    parser.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="ws://HOST:PORT",
        help="join this server instead of embedding one (repeat for failover)",
    )
    parser.add_argument(
        "--latency",
        type=int,
        default=600,
        metavar="MS",
        help="the embedded server's simulated round trip (default 600, so taps visibly coalesce)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="PATH",
        help="where devices and the embedded server keep state",
    )
    parser.add_argument(
        "--items",
        type=int,
        metavar="N",
        help="catalogue size (extra items reuse the icons), e.g. 1000",
    )
    parser.add_argument(
        "--screenshot", type=Path, metavar="PATH", help="render the windows to one PNG and exit"
    )
    args = parser.parse_args(argv)
    if args.devices < 0:
        parser.error("--devices must be 0 or more")
    if args.items is not None and args.items < 1:
        parser.error("--items must be at least 1")
    if not 0 <= args.latency <= 60_000:
        parser.error("--latency must be between 0 and 60000 ms")
    return args


async def run(args: argparse.Namespace) -> int:
    """The boot coroutine: create everything, wait for quit, close everything."""
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
        )
        try:
            await demo.start(args.devices)
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


def main(argv: Sequence[str] | None = None) -> int:
    from app.ui.theme import apply_theme

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("optisync demo")
    app.setDesktopFileName("optisync-demo")
    apply_theme(app)
    # asyncio.run(..., loop_factory=qasync.QEventLoop) from Python 3.12 on; Runner is its 3.11 form.
    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        return runner.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
