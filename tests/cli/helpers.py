"""Run optisync's commands as a user would: a subprocess, its exit code and output."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.timeouts import TIMEOUT

__all__ = ["ROOT", "assert_one_line_error", "prefetch", "run_command"]

ROOT = Path(__file__).resolve().parents[2]


_Key = tuple[tuple[str, ...], tuple[tuple[str, str], ...]]
_prefetched: dict[_Key, subprocess.CompletedProcess[str]] = {}


def _key(args: Sequence[str], env: Mapping[str, str] | None) -> _Key:
    return tuple(args), tuple(sorted((env or {}).items()))


def _run(key: _Key, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    args, env = key
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OPTISYNC_")}
    environment["PYTHONPATH"] = str(ROOT)
    environment["QT_QPA_PLATFORM"] = "offscreen"
    if "OPTISYNC_TIMEOUT_FACTOR" in os.environ:
        environment["OPTISYNC_TIMEOUT_FACTOR"] = os.environ["OPTISYNC_TIMEOUT_FACTOR"]
    environment.update(env)
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd or ROOT, env=environment, capture_output=True, text=True, timeout=3 * TIMEOUT,
    )  # fmt: skip


def prefetch(commands: Sequence[tuple[Sequence[str], Mapping[str, str] | None]]) -> None:
    """Run independent commands side by side now; :func:`run_command` then returns
    their results (a user's mistakes each cost a Python start-up: do them at once)."""
    keys = [_key(args, env) for args, env in commands]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for key, result in zip(keys, pool.map(_run, keys), strict=True):
            _prefetched[key] = result


def run_command(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python ARGS...`` from the source tree, with ``OPTISYNC_*`` variables only from ``env``."""
    key = _key(args, env)
    if cwd is None and key in _prefetched:
        return _prefetched.pop(key)
    return _run(key, cwd)


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], prog: str, code: int, *words: str
) -> str:
    """The command failed with ``code`` and said why in one line naming ``words``."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith(f"{prog}: error: "), line
    for word in words:
        assert word in line, (word, line)
    return line
