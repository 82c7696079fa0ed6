"""The wheel works from a plain install, outside the source tree.

The wheel is built from a copy of the source tree and installed into a fresh
virtual environment in a temporary folder. The installed dependencies are
borrowed from the running environment (a ``.pth`` line, without its editable
optisync), so ``pip install --no-index`` still checks them and no network is
needed. Every command then runs from that environment, in a folder that has
no ``app`` or ``syncserver`` source in it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.timeouts import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
_LEFT_OUT = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis",
    "perf-results", "tests",
)  # fmt: skip
_URL = re.compile(rb"ws://127\.0\.0\.1:(\d+)")
_DOC_LINK = re.compile(r"\]\(([^)#\s]+)[^)]*\)")
"""The target of a Markdown link, without its #anchor (links within a file have none)."""

_ROUND_TRIP = """
import asyncio, json, sys
from websockets.asyncio.client import connect

async def main(url):
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "hello", "device_id": 7}))
        await ws.send(json.dumps({"type": "set", "request_id": 1, "key": "like/a",
                                  "value": True, "local_revision": 1, "device_id": 7}))
        async for frame in ws:
            message = json.loads(frame)
            if message["type"] == "ack":
                print("ack", message["key"], message["value"], message["server_revision"])
                return

asyncio.run(asyncio.wait_for(main(sys.argv[1]), 10))
"""


def _clean_env() -> dict[str, str]:
    """The caller's environment minus anything that would find the source tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source") / "optisync"
    shutil.copytree(ROOT, source, ignore=_LEFT_OUT)
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", str(out), str(source)],
        check=True, timeout=6 * TIMEOUT,
    )  # fmt: skip
    (built,) = out.glob("optisync-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment with the wheel installed; returns its ``bin`` folder."""
    root = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    ask = "import sysconfig; print(sysconfig.get_path('purelib'))"
    target = Path(
        subprocess.run(
            [str(root / "bin" / "python"), "-c", ask], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    (target / "_borrowed_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(root / "bin" / "python"), "install",
         "--quiet", "--no-index", "--no-cache-dir", str(wheel)],
        check=True, timeout=6 * TIMEOUT, env=_clean_env(),
    )  # fmt: skip
    return root / "bin"


def test_wheel_ships_assets_typing_markers_license_and_protocol(wheel: Path) -> None:
    """The wheel holds the demo's assets, both py.typed markers, LICENSE and the server's docs."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "app/assets/catalogue.json",
        "app/assets/style.qss",
        "app/assets/icons/heart-filled.svg",
        "app/py.typed",
        "syncserver/py.typed",
        "syncserver/PROTOCOL.md",
        "syncserver/BACKENDS.md",
        "syncserver/SECURITY.md",
        "optisync-0.1.0.dist-info/licenses/LICENSE",
    ):
        assert expected in names, expected
    assert not any(name.startswith("tests/") for name in names)


def test_wheel_keeps_qt_and_redis_in_extras(wheel: Path) -> None:
    """The core, link and server need no Qt: PySide6, qasync and redis come only with extras."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = Parser().parsestr(archive.read("optisync-0.1.0.dist-info/METADATA").decode())
    requirements = metadata.get_all("Requires-Dist") or []
    base = [r for r in requirements if "extra ==" not in r]
    assert base, requirements
    assert not [r for r in base if re.match(r"(?i)(pyside6|qasync|redis|ruff|mypy)", r)], base
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert {"demo", "redis", "test", "dev"} <= extras
    assert metadata["License-Expression"] == "MIT"


def test_installed_demo_renders_a_screenshot(venv: Path, tmp_path: Path) -> None:
    """`python -m app --screenshot` works from the installed wheel (assets found)."""
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [str(venv / "python"), "-m", "app", "--screenshot", str(shot)],
        cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=3 * TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _module_file(venv, "app", tmp_path).startswith(str(venv.parent))
    assert shot.read_bytes().startswith(b"\x89PNG")


def test_installed_server_prints_help(venv: Path, tmp_path: Path) -> None:
    """`python -m syncserver --help` works from the installed wheel and names PROTOCOL.md."""
    result = subprocess.run(
        [str(venv / "python"), "-m", "syncserver", "--help"],
        cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "PROTOCOL.md" in result.stdout
    assert _module_file(venv, "syncserver", tmp_path).startswith(str(venv.parent))


def test_installed_docs_link_only_to_installed_files(venv: Path, tmp_path: Path) -> None:
    """Every relative link in the installed PROTOCOL.md, BACKENDS.md and SECURITY.md
    names a file or folder that the wheel installed."""
    package = Path(_module_file(venv, "syncserver", tmp_path).strip()).parent
    checked = 0
    for doc in ("PROTOCOL.md", "BACKENDS.md", "SECURITY.md"):
        for target in _DOC_LINK.findall((package / doc).read_text(encoding="utf-8")):
            if "://" in target:
                continue
            assert (package / target).exists(), f"{doc} links to {target}, not installed"
            checked += 1
    assert checked >= 5


def test_installed_server_acks_a_write(venv: Path, tmp_path: Path) -> None:
    """The installed `syncserver` script accepts a hello and acks a set."""
    server = subprocess.Popen(
        [str(venv / "syncserver"), "--port", "0", "--db", str(tmp_path / "db.sqlite3")],
        cwd=tmp_path, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        found = _URL.search(line)
        assert found, line
        result = subprocess.run(
            [str(venv / "python"), "-c", _ROUND_TRIP, f"ws://127.0.0.1:{int(found.group(1))}"],
            cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["ack", "like/a", "True", "1"]
    finally:
        server.terminate()
        server.communicate(timeout=TIMEOUT)
    assert server.returncode == 0


def _module_file(venv: Path, module: str, cwd: Path) -> str:
    return subprocess.run(
        [str(venv / "python"), "-c", f"import {module}; print({module}.__file__)"],
        cwd=cwd, env=_clean_env(), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
