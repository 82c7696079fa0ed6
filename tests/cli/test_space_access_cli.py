"""`syncserver --space-access` and `--max-spaces-per-connection` on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncserver.__main__ import parse_args
from syncserver.access import parse_space_access
from syncserver.cli import USAGE
from tests.cli.helpers import assert_one_line_error, run_command

SERVER = ("-m", "syncserver")

BAD_FILES = [
    ("[spaces\nfamily = [1]\n", ["not valid TOML"]),
    ("family = [1]\n", ["unknown table or key 'family'"]),
    ("[space]\nfamily = [1]\n", ["unknown table or key 'space'"]),
    ("[spaces]\nfamily = [1, 'two']\n", ["spaces.family", "device ids"]),
    ("[spaces]\nfamily = 'everyone'\n", ["spaces.family", '"*"']),
    ("[spaces]\nfamily = [true]\n", ["spaces.family"]),
    ('[spaces]\n"" = "*"\n', ["1 to 128"]),
]


@pytest.mark.parametrize(("text", "words"), BAD_FILES)
def test_a_bad_space_access_table_is_one_line_naming_the_problem(
    text: str, words: list[str]
) -> None:
    """Each malformed table raises ValueError with one line naming the file and the fix."""
    with pytest.raises(ValueError, match=r"^access\.toml: ") as caught:
        parse_space_access(text, "access.toml")
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_a_good_space_access_file_becomes_the_config(tmp_path: Path) -> None:
    """ "*" opens a space to every device; a list names the devices; env works too."""
    access = tmp_path / "access.toml"
    access.write_text(
        '# who may join what\n[spaces]\ndefault = "*"\nfamily = [4503599627370495, 12]\n'
    )
    config = parse_args(["--space-access", str(access), "--max-spaces-per-connection", "3"]).config
    assert config.space_access == {"default": None, "family": frozenset({4503599627370495, 12})}
    assert config.max_spaces_per_connection == 3


def test_space_options_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPTISYNC_SPACE_ACCESS and OPTISYNC_MAX_SPACES_PER_CONNECTION set the options."""
    access = tmp_path / "access.toml"
    access.write_text("[spaces]\nroom = [1]\n")
    monkeypatch.setenv("OPTISYNC_SPACE_ACCESS", str(access))
    monkeypatch.setenv("OPTISYNC_MAX_SPACES_PER_CONNECTION", "5")
    config = parse_args([]).config
    assert (config.space_access, config.max_spaces_per_connection) == ({"room": frozenset({1})}, 5)


def test_a_bad_space_access_file_stops_the_server_in_one_line(tmp_path: Path) -> None:
    """The server refuses a malformed --space-access file at start: one line, exit 2."""
    access = tmp_path / "access.toml"
    access.write_text("[spaces]\nfamily = 'everyone'\n")
    result = run_command(*SERVER, "--port", "0", "--space-access", str(access))
    assert_one_line_error(result, "syncserver", USAGE, "--space-access", str(access))


def test_a_missing_space_access_file_named_by_the_environment_is_one_line() -> None:
    """OPTISYNC_SPACE_ACCESS naming no file: one line naming the variable, exit 2."""
    result = run_command(*SERVER, env={"OPTISYNC_SPACE_ACCESS": "/no/such/access.toml"})
    assert_one_line_error(
        result, "syncserver", USAGE, "OPTISYNC_SPACE_ACCESS", "/no/such/access.toml"
    )


def test_zero_spaces_per_connection_is_one_line() -> None:
    """--max-spaces-per-connection 0 is refused in one line (exit 2)."""
    result = run_command(*SERVER, "--max-spaces-per-connection", "0")
    assert_one_line_error(result, "syncserver", USAGE, "--max-spaces-per-connection", "at least 1")
