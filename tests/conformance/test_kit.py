"""The conformance kit, run as a user would: against this project's server, and against
a server that breaks the protocol."""

from __future__ import annotations

import ast
import asyncio
import json
import re
import subprocess
import sys

from websockets.asyncio.server import ServerConnection, serve

from tests.timeouts import TIMEOUT

from .conftest import ENV, ROOT, RunningServer

KIT_DIR = ROOT / "syncserver" / "conformance"
START = f"{sys.executable} -m syncserver --port 0 --db {{dir}}/sync.sqlite3"


async def run_kit(*args: str, limit: float = 20 * TIMEOUT) -> tuple[int, str, str]:
    """``python -m syncserver.conformance ARGS``: exit status, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncserver.conformance", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=ENV,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), limit)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def run_kit_now(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncserver.conformance", *args],
        capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=TIMEOUT,
    )  # fmt: skip


async def test_the_kit_passes_against_this_server(chaos_server: RunningServer):
    """Every check passes, none skipped, against python -m syncserver --allow-chaos."""
    wait = str(TIMEOUT / 2)  # per expected frame; scales with OPTISYNC_TIMEOUT_FACTOR
    status, out, err = await run_kit(chaos_server.url, "--start-server", START, "--timeout", wait)
    lines = out.splitlines()
    failures = [line for line in lines[:-1] if not line.startswith("PASS ")]
    assert failures == [], "\n".join(failures) + err
    assert re.fullmatch(r"\d+ passed, 0 failed", lines[-1]), lines[-1]
    assert status == 0


async def test_the_kit_fails_a_server_that_breaks_the_protocol():
    """A server whose snapshot lacks protocol and epoch fails the check; the kit exits 1."""

    async def old_server(ws: ServerConnection) -> None:
        async for _ in ws:
            await ws.send(json.dumps({"type": "snapshot", "revision": 0, "values": []}))

    async with serve(old_server, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        status, out, _ = await run_kit(f"ws://127.0.0.1:{port}", "--only", "answered_by_a")
    assert out.splitlines() == [
        "FAIL hello_is_answered_by_a_snapshot: snapshot.protocol is None, expected 1",
        "0 passed, 1 failed",
    ]
    assert status == 1


def test_the_kit_explains_itself_with_help():
    """--help names the URL, --start-server, what it appends and the final line."""
    result = run_kit_now("--help")
    assert result.returncode == 0
    for needle in ("ws://HOST:PORT", "--start-server", "{dir}", "--token", "N passed, M failed"):
        assert needle in result.stdout, needle


def test_a_wrong_url_is_one_line_on_stderr():
    """A URL that is not ws:// is a usage error (exit 2) saying so, never a traceback."""
    result = run_kit_now("http://example")
    assert result.returncode == 2
    assert "not a websocket URL" in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_every_check_is_listed_once_with_a_description():
    """--list shows each check once, with its one-line description."""
    result = run_kit_now("--list")
    lines = result.stdout.splitlines()
    names = [line.split(": ", 1)[0] for line in lines]
    assert len(names) == len(set(names)) >= 40
    assert all(len(line.split(": ", 1)[1]) > 10 for line in lines)


def test_the_checks_import_only_the_websockets_client_and_the_standard_library():
    """No module of the kit (but the schema writer) imports the server, msgspec or app."""
    allowed = {"websockets"} | set(sys.stdlib_module_names)
    for path in sorted(KIT_DIR.glob("*.py")):
        if path.name == "schema.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
                assert not name.startswith("websockets.asyncio.server"), path.name


def test_loading_the_kit_leaves_the_server_runtime_unloaded():
    """Importing the kit's runner loads neither syncserver.server nor websockets' server."""
    code = (
        "import sys, syncserver.conformance.runner\n"
        "print([m for m in ('syncserver.server', 'syncserver.backends',"
        " 'websockets.asyncio.server') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=TIMEOUT, check=True,
    )  # fmt: skip
    assert result.stdout.strip() == "[]"


async def test_checks_the_server_cannot_run_are_skipped_and_not_counted(tmp_path):
    """No --allow-chaos, no --start-server, no {dir}: those checks say SKIP and why."""
    server = await RunningServer.start("--db", str(tmp_path / "plain.sqlite3"))
    try:
        status, out, _ = await run_kit(server.url, "--only", "observe", "--only", "token")
        without_dir = START.replace("{dir}/", str(tmp_path) + "/")
        _, fresh, _ = await run_kit(
            server.url, "--only", "new_database", "--start-server", without_dir
        )
    finally:
        await server.stop()
    lines = out.splitlines()
    assert lines[-1] == "0 passed, 0 failed"
    assert status == 0
    skipped = [line for line in lines if line.startswith("SKIP ")]
    assert any("observer" in line and "--allow-chaos" in line for line in skipped)
    assert any("token" in line and "--start-server" in line for line in skipped)
    assert fresh.splitlines()[0].startswith("SKIP a_new_database_has_a_new_epoch: needs {dir}")
