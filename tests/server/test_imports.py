"""What importing the client side pulls in."""

from __future__ import annotations

import subprocess
import sys

from tests.server.conftest import ROOT


def test_importing_the_link_does_not_load_the_server_runtime() -> None:
    """import app.link loads neither syncserver.server nor websockets' server."""
    probe = (
        "import sys, app.link\n"
        "loaded = sorted(m for m in ('syncserver.server', 'websockets.asyncio.server')"
        " if m in sys.modules)\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_the_runtime_names_still_load_from_the_package() -> None:
    """from syncserver import SyncServer, serve, start_server still works."""
    import syncserver

    assert syncserver.SyncServer.__name__ == "SyncServer"
    assert callable(syncserver.serve)
    assert callable(syncserver.start_server)
