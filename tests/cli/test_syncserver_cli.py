"""`syncserver`'s command line: help, version, environment variables and one-line errors."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from syncserver.__main__ import parse_args
from syncserver.cli import RUNTIME, USAGE
from syncserver.config import ServerConfig
from tests.cli.helpers import assert_one_line_error, prefetch, run_command
from tests.old_databases import write_database_from_before_spaces

SERVER = ("-m", "syncserver")

WRONG_OPTIONS = [
    (["--port", "99999"], ["--port", "65535", "99999"]),
    (["--port", "-1"], ["--port", "between 0 and 65535"]),
    (["--port", "http"], ["--port", "whole number"]),
    (["--rate-limit", "0"], ["--rate-limit", "more than 0"]),
    (["--rate-limit", "nan"], ["--rate-limit"]),
    (["--rate-burst", "0"], ["--rate-burst", "at least 1"]),
    (["--max-connections", "0"], ["--max-connections", "at least 1"]),
    (["--max-send-buffer", "100"], ["--max-send-buffer", "at least"]),
    (["--backend", "postgres://x"], ["--backend", "redis://"]),
    (["--backend", "redis://localhost:99999/0"], ["--backend", "out of range"]),
    (["--backend", "memory", "--db", "x.sqlite3"], ["--db", "memory"]),
    (["--synchronous", "OFF"], ["--synchronous", "FULL or NORMAL"]),
    (["--log-level", "loud"], ["--log-level", "debug, info"]),
    (["--token", ""], ["--token", "empty"]),
    (["--host", " "], ["--host", "empty"]),
    (["--prot", "8765"], ["--prot"]),
]

WRONG_VARIABLES = [
    ("OPTISYNC_PORT", "99999"),
    ("OPTISYNC_RATE_LIMIT", "0"),
    ("OPTISYNC_ALLOW_CHAOS", "maybe"),
    ("OPTISYNC_BACKEND", "mysql://db"),
]


@pytest.fixture(scope="module", autouse=True)
def _run_the_mistakes_at_once() -> None:
    prefetch([((*SERVER, *args), None) for args, _ in WRONG_OPTIONS])
    prefetch([(SERVER, {variable: value}) for variable, value in WRONG_VARIABLES])


def test_help_lists_every_option_with_its_default_and_variable() -> None:
    """--help shows each option's default and OPTISYNC_* variable and points to PROTOCOL.md."""
    result = run_command(*SERVER, "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for option, variable, default in [
        ("--host", "OPTISYNC_HOST", "default 127.0.0.1"),
        ("--port", "OPTISYNC_PORT", "default 8765"),
        ("--db", "OPTISYNC_DB", "default the user data folder"),
        ("--backend", "OPTISYNC_BACKEND", "default sqlite"),
        ("--allow-chaos", "OPTISYNC_ALLOW_CHAOS", "default off"),
        ("--token", "OPTISYNC_TOKEN", "default none"),
        ("--max-connections", "OPTISYNC_MAX_CONNECTIONS", "default 10000"),
        ("--rate-limit", "OPTISYNC_RATE_LIMIT", "default 5000"),
        ("--rate-burst", "OPTISYNC_RATE_BURST", "default 10000"),
        ("--max-send-buffer", "OPTISYNC_MAX_SEND_BUFFER", "default 8388608 (8 MiB)"),
        ("--synchronous", "OPTISYNC_SYNCHRONOUS", "default FULL"),
        ("--log-level", "OPTISYNC_LOG_LEVEL", "default info"),
    ]:
        assert option in text
        assert f"({default}; env {variable}" in text, option
    assert "PROTOCOL.md" in text
    assert "/healthz" in text
    assert "/metrics" in text


def test_version_prints_the_package_version() -> None:
    """--version prints `syncserver VERSION` and exits 0."""
    result = run_command(*SERVER, "--version")
    assert result.returncode == 0
    assert result.stdout.split()[0] == "syncserver"
    assert result.stdout.split()[1][0].isdigit() or result.stdout.split()[1] == "unknown"


@pytest.mark.parametrize(("args", "words"), WRONG_OPTIONS)
def test_a_wrong_option_is_one_line_and_exit_2(args: list[str], words: list[str]) -> None:
    """Each impossible or malformed option value is refused at start in one line (exit 2)."""
    line = assert_one_line_error(run_command(*SERVER, *args), "syncserver", USAGE, *words)
    assert "--help" in line


@pytest.mark.parametrize(("variable", "value"), WRONG_VARIABLES)
def test_a_wrong_environment_variable_is_named_in_one_line(variable: str, value: str) -> None:
    """A bad OPTISYNC_* value is refused at start in one line naming the variable (exit 2)."""
    result = run_command(*SERVER, env={variable: value})
    assert_one_line_error(result, "syncserver", USAGE, variable, repr(value))


def test_environment_variables_set_every_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every server option can come from its OPTISYNC_* variable; the command line wins."""
    for variable, value in {
        "OPTISYNC_HOST": "::1",
        "OPTISYNC_PORT": "9001",
        "OPTISYNC_DB": str(tmp_path / "env.sqlite3"),
        "OPTISYNC_ALLOW_CHAOS": "yes",
        "OPTISYNC_TOKEN": "s3cret",
        "OPTISYNC_MAX_CONNECTIONS": "7",
        "OPTISYNC_RATE_LIMIT": "12.5",
        "OPTISYNC_RATE_BURST": "30",
        "OPTISYNC_MAX_SEND_BUFFER": "2097152",
        "OPTISYNC_SYNCHRONOUS": "normal",
        "OPTISYNC_LOG_LEVEL": "WARNING",
    }.items():
        monkeypatch.setenv(variable, value)
    args = parse_args(["--port", "9002"])
    assert args.config == ServerConfig(
        host="::1",
        port=9002,
        db_path=tmp_path / "env.sqlite3",
        allow_chaos=True,
        token="s3cret",
        max_connections=7,
        rate_limit=12.5,
        rate_burst=30,
        max_send_buffer=2097152,
        synchronous="NORMAL",
    )
    assert args.log_level == "warning"
    monkeypatch.setenv("OPTISYNC_BACKEND", "memory")
    monkeypatch.delenv("OPTISYNC_DB")
    assert parse_args(["-v"]).config.backend == "memory"
    assert parse_args(["-v"]).log_level == "debug"


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """Another process on the port: one line naming the port and what to do (exit 1)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_command(*SERVER, "--port", port, "--db", str(tmp_path / "db.sqlite3"))
    assert_one_line_error(result, "syncserver", RUNTIME, port, "already in use", "--port")


def test_an_address_not_on_this_machine_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """--host with an address this machine does not have: one line naming it (exit 1)."""
    result = run_command(
        *SERVER, "--host", "192.0.2.1", "--port", "0", "--db", str(tmp_path / "db.sqlite3")
    )
    assert_one_line_error(result, "syncserver", RUNTIME, "192.0.2.1", "--host")


def test_a_database_under_a_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """--db whose folder is a file: one line naming the path and the folder (exit 2)."""
    (tmp_path / "file").write_text("not a folder")
    db = tmp_path / "file" / "db.sqlite3"
    result = run_command(*SERVER, "--port", "0", "--db", str(db))
    assert_one_line_error(result, "syncserver", USAGE, "--db", str(db), "is not a folder")


def test_a_database_in_a_missing_folder_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    """--db (or OPTISYNC_DB) in a folder that does not exist: one line (exit 2), no folder made."""
    db = tmp_path / "missing" / "deeper" / "db.sqlite3"
    by_option = run_command(*SERVER, "--port", "0", "--db", str(db))
    assert_one_line_error(by_option, "syncserver", USAGE, "--db", str(db.parent), "does not exist")
    by_variable = run_command(*SERVER, "--port", "0", env={"OPTISYNC_DB": str(db)})
    assert_one_line_error(by_variable, "syncserver", USAGE, "OPTISYNC_DB", "does not exist")
    assert list(tmp_path.iterdir()) == []


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_DATA_HOME moves the data folder on Linux")
def test_a_bad_host_leaves_the_default_database_unchanged(tmp_path: Path) -> None:
    """--host that cannot be resolved, no --db: one line (exit 1), and the old-layout
    database in the user data folder is neither migrated nor touched."""
    data = tmp_path / "optisync"
    data.mkdir()
    write_database_from_before_spaces(data / "syncserver.sqlite3")
    before = _files(data)
    result = run_command(
        *SERVER, "--host", "999.1.1.1", "--port", "0", env={"XDG_DATA_HOME": str(tmp_path)}
    )
    assert_one_line_error(result, "syncserver", RUNTIME, "999.1.1.1", "--host")
    assert _files(data) == before


def test_a_port_in_use_leaves_the_database_unchanged(tmp_path: Path) -> None:
    """A taken port: one line (exit 1), and the old-layout --db file is not migrated."""
    db = tmp_path / "old.sqlite3"
    write_database_from_before_spaces(db)
    before = _files(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_command(*SERVER, "--port", port, "--db", str(db))
    assert_one_line_error(result, "syncserver", RUNTIME, port, "already in use")
    assert _files(tmp_path) == before


def test_a_database_that_is_a_folder_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """--db naming a folder (SQLite cannot open it): one line naming the path (exit 1)."""
    result = run_command(*SERVER, "--port", "0", "--db", str(tmp_path))
    assert_one_line_error(result, "syncserver", RUNTIME, str(tmp_path), "--db")


def test_redis_down_is_one_line_and_exit_1() -> None:
    """--backend naming a Redis that does not answer: one line naming it (exit 1)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    result = run_command(*SERVER, "--port", "0", "--backend", url)
    assert_one_line_error(result, "syncserver", RUNTIME, url, "start Redis")


def test_redis_not_installed_is_one_line_and_exit_1() -> None:
    """--backend redis://… without the redis package: one line saying what to install."""
    hide_redis = (
        "import sys; sys.modules['redis'] = None; from syncserver.__main__ import main; "
        "main(['--port', '0', '--backend', 'redis://127.0.0.1:6379/0'])"
    )
    result = run_command("-c", hide_redis)
    assert_one_line_error(result, "syncserver", RUNTIME, "pip install redis", "'.[redis]'")


def test_a_certificate_that_is_not_pem_is_one_line_naming_it(tmp_path: Path) -> None:
    """--certfile that is no PEM certificate: one line naming the TLS files, not the port."""
    certfile = tmp_path / "cert.pem"
    certfile.write_text("not a certificate\n")
    result = run_command(
        *SERVER, "--port", "0", "--db", str(tmp_path / "db.sqlite3"), "--certfile", str(certfile)
    )
    line = assert_one_line_error(result, "syncserver", RUNTIME, "--certfile", str(certfile))
    assert "port" not in line, line


def test_a_key_that_does_not_match_the_certificate_is_one_line(tmp_path: Path) -> None:
    """--keyfile of another certificate: one line naming both files and the mismatch."""
    import trustme

    authority = trustme.CA()
    served, other = authority.issue_cert("127.0.0.1"), authority.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    served.cert_chain_pems[0].write_to_path(str(certfile))
    other.private_key_pem.write_to_path(str(keyfile))
    result = run_command(
        *SERVER, "--port", "0", "--db", str(tmp_path / "db.sqlite3"),
        "--certfile", str(certfile), "--keyfile", str(keyfile),
    )  # fmt: skip
    assert_one_line_error(result, "syncserver", RUNTIME, str(certfile), str(keyfile), "mismatch")
