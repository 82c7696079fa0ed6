"""Tokens, secrets, TLS and limits on the command lines of the server and the app."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.__main__ import parse_args as parse_app_args
from syncserver.__main__ import parse_args
from syncserver.cli import USAGE
from tests.cli.helpers import assert_one_line_error, run_command


def test_the_server_reads_its_token_from_a_file_before_the_environment(
    token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--token-file wins over OPTISYNC_TOKEN; without it the variable is the token."""
    monkeypatch.setenv("OPTISYNC_TOKEN", "from-env")
    assert parse_args(["--token-file", str(token_file)]).config.token == "t0ken-from-a-file"
    assert parse_args([]).config.token == "from-env"


def test_the_server_takes_its_access_and_limit_options_from_flags_and_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--require-device-secrets, the per-address limits and the total cap reach ServerConfig."""
    monkeypatch.setenv("OPTISYNC_REQUIRE_DEVICE_SECRETS", "1")
    monkeypatch.setenv("OPTISYNC_CATCHUP_RATE", "1000")
    config = parse_args(
        [
            "--max-total-send-buffer", "33554432",
            "--max-connections-per-address", "7",
            "--address-rate-limit", "50",
            "--forwarded-allow", "10.0.0.1, 10.0.0.2",
            "--limit-loopback",
        ]
    ).config  # fmt: skip
    assert config.require_device_secrets
    assert config.catchup_rate == 1000
    assert config.max_total_send_buffer == 32 * 2**20
    assert config.max_connections_per_address == 7
    assert config.address_rate_limit == 50
    assert config.forwarded_allow == ("10.0.0.1", "10.0.0.2")
    assert config.limit_loopback


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--token", "a", "--token-file", "TOKEN"], ["--token", "--token-file", "not both"]),
        (["--token-file", "EMPTY"], ["token file", "empty"]),
        (["--token-file", "/no/such/file"], ["--token-file", "no such file"]),
        (["--keyfile", "TOKEN"], ["keyfile", "certfile"]),
        (["--forwarded-allow", "proxy.local"], ["--forwarded-allow", "not an IP"]),
    ],
)
def test_a_wrong_access_option_is_one_line_on_stderr(
    args: list[str], words: list[str], token_file: Path, tmp_path: Path
) -> None:
    """Token, TLS and proxy mistakes: exit 2 and one line saying what is wrong."""
    empty = tmp_path / "empty"
    empty.write_text("\n")
    paths = {"TOKEN": str(token_file), "EMPTY": str(empty)}
    result = run_command("-m", "syncserver", *[paths.get(arg, arg) for arg in args])
    assert_one_line_error(result, "syncserver", USAGE, *words)


def test_the_app_reads_the_token_from_a_file_or_the_environment(
    token_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """python -m app: --token-file, else OPTISYNC_TOKEN; --cafile must exist."""
    monkeypatch.setenv("OPTISYNC_TOKEN", "from-env")
    assert parse_app_args(["--token-file", str(token_file)]).token == "t0ken-from-a-file"
    assert parse_app_args([]).token == "from-env"
    monkeypatch.delenv("OPTISYNC_TOKEN")
    assert parse_app_args([]).token is None
    with pytest.raises(SystemExit) as exited:
        parse_app_args(["--cafile", str(tmp_path / "missing.pem")])
    assert exited.value.code == USAGE
