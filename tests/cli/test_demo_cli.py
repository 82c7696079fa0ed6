"""`python -m app`'s command line: version, --server URLs checked at start, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.__main__ import parse_args
from syncserver.cli import RUNTIME, USAGE
from tests.cli.helpers import assert_one_line_error, prefetch, run_command

DEMO = ("-m", "app")

BAD_URLS = [
    ("localhost:8765", ["localhost:8765", "ws://HOST:PORT"]),
    ("http://127.0.0.1:8765", ["HTTP", "ws://127.0.0.1:8765"]),
    ("https://sync.example", ["HTTP", "wss://sync.example"]),
    ("ws://[bad", ["ws://[bad", "not a URL"]),
    ("ws://:8765", ["names no host"]),
    ("ws://host:99999", ["out of range"]),
    ("ws://host:0", ["port 0"]),
    ("127.0.0.1", ["not a ws://"]),
]

WRONG_OPTIONS = [
    (["--devices", "-1"], ["--devices"]),
    (["--devices", "many"], ["--devices", "whole number"]),
    (["--latency", "99999"], ["--latency", "60000"]),
    (["--items", "0"], ["--items"]),
    (["--log-level", "chatty"], ["--log-level"]),
    (["--screenshot", "shot.jpg"], ["--screenshot", ".png"]),
    (["--screenshot", "/no/such/folder/shot.png"], ["--screenshot", "/no/such/folder"]),
    (["--data-dir", "README.md"], ["--data-dir", "README.md"]),
    (["--space", ""], ["--space", "cannot be empty"]),
    (["--space", "s" * 129], ["--space", "129 characters", "at most 128"]),
    (["--space", "é" * 129], ["--space", "129 characters"]),
    (["--spaces", "family"], ["--spaces", "two or more"]),
    (["--spaces", "family,,work"], ["--spaces", "cannot be empty"]),
    (["--spaces", "family,family"], ["--spaces", "'family' is named twice"]),
    (["--spaces", "a,b,c,d,e,f,g,h,i"], ["--spaces", "at most 8"]),
    (["--space", "family", "--spaces", "a,b"], ["--spaces", "--space"]),
]


@pytest.fixture(scope="module", autouse=True)
def _run_the_mistakes_at_once() -> None:
    prefetch([((*DEMO, "--server", url), None) for url, _ in BAD_URLS])
    prefetch([((*DEMO, *args), None) for args, _ in WRONG_OPTIONS])


def test_version_prints_the_package_version() -> None:
    """--version prints `optisync-demo VERSION` and exits 0 without starting Qt."""
    result = run_command(*DEMO, "--version")
    assert result.returncode == 0
    assert result.stdout.split()[0] == "optisync-demo"


@pytest.mark.parametrize(("url", "words"), BAD_URLS)
def test_a_bad_server_url_is_one_line_and_exit_2(url: str, words: list[str]) -> None:
    """A --server that is not ws(s)://HOST[:PORT] is refused at start in one line."""
    result = run_command(*DEMO, "--server", url)
    assert_one_line_error(result, "optisync-demo", USAGE, "--server", *words)


@pytest.mark.parametrize(("args", "words"), WRONG_OPTIONS)
def test_a_wrong_option_is_one_line_and_exit_2(args: list[str], words: list[str]) -> None:
    """Each impossible option value is refused at start in one line (exit 2)."""
    assert_one_line_error(run_command(*DEMO, *args), "optisync-demo", USAGE, *words)


def test_good_server_urls_are_kept_as_given() -> None:
    """ws:// and wss:// URLs with a host (and optional port and path) pass unchanged."""
    urls = ["ws://127.0.0.1:8765", "wss://sync.example/optisync", "ws://[::1]:9000"]
    args = parse_args([arg for url in urls for arg in ("--server", url)])
    assert args.server == urls


def test_every_device_is_in_the_default_space_unless_told() -> None:
    """No option: one space, "default"; --space X: one space, X."""
    assert parse_args([]).spaces == ("default",)
    assert parse_args(["--space", "family"]).spaces == ("family",)
    assert parse_args(["--space", "é" * 128]).spaces == ("é" * 128,)


def test_spaces_are_split_on_commas_and_stripped() -> None:
    """--spaces "family, work" gives the two names, in order, without the blanks."""
    assert parse_args(["--spaces", "family, work"]).spaces == ("family", "work")
    assert parse_args(["--spaces", "b,a,c"]).spaces == ("b", "a", "c")


def test_a_space_name_with_a_newline_is_still_one_error_line() -> None:
    """The name is quoted with escapes, so a refused name never breaks the line."""
    result = run_command(*DEMO, "--spaces", "one\nline,one\nline")
    assert_one_line_error(result, "optisync-demo", USAGE, "--spaces", "named twice")


def test_a_data_dir_that_cannot_be_made_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """--data-dir under a file: one line naming the folder and what to do (exit 1)."""
    (tmp_path / "file").write_text("not a folder")
    data_dir = tmp_path / "file" / "demo"
    shot = tmp_path / "shot.png"
    result = run_command(*DEMO, "--data-dir", str(data_dir), "--screenshot", str(shot))
    assert_one_line_error(result, "optisync-demo", RUNTIME, str(data_dir), "--data-dir")


def test_no_display_is_one_line_and_exit_1() -> None:
    """Windows without a display: one line saying so instead of Qt aborting the process."""
    result = run_command(*DEMO, env={"QT_QPA_PLATFORM": "", "DISPLAY": "", "WAYLAND_DISPLAY": ""})
    assert_one_line_error(result, "optisync-demo", RUNTIME, "no display")


HIDE_QT = "import sys; sys.modules['PySide6'] = None; from app.__main__ import main; main([])"


def test_qt_not_installed_is_one_line_and_exit_1() -> None:
    """Without PySide6 (a server-only install): one line saying how to add the demo extra."""
    result = run_command("-c", HIDE_QT)
    assert_one_line_error(
        result, "optisync-demo", RUNTIME, "PySide6", "pip install '.[demo]'", "checkout"
    )


def test_qt_not_installed_is_reported_before_a_missing_display() -> None:
    """Without PySide6 and without a display, the one line names PySide6, the real cause."""
    no_display = {"QT_QPA_PLATFORM": "", "DISPLAY": "", "WAYLAND_DISPLAY": ""}
    result = run_command("-c", HIDE_QT, env=no_display)
    line = assert_one_line_error(result, "optisync-demo", RUNTIME, "PySide6", "[demo]")
    assert "display" not in line, line
