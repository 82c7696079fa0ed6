"""ServerConfig: one place for the server's options."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncserver import ServerConfig, SyncServer, serve, start_server
from syncserver.limits import DEFAULT_RATE_LIMIT


def test_config_defaults_are_the_documented_ones() -> None:
    """A default ServerConfig listens on loopback, any port, SQLite, no chaos, no token."""
    config = ServerConfig()
    assert (config.host, config.port, config.backend) == ("127.0.0.1", 0, None)
    assert (config.allow_chaos, config.token, config.synchronous) == (False, None, "FULL")
    assert config.rate_limit == DEFAULT_RATE_LIMIT


@pytest.mark.parametrize(
    "options",
    [
        {"port": -1},
        {"port": 70000},
        {"rate_limit": 0},
        {"rate_burst": 0},
        {"max_connections": 0},
        {"max_send_buffer": 0},
        {"observe_interval": -1.0},
        {"synchronous": "OFF"},
    ],
)
def test_config_refuses_impossible_values(options: dict[str, object]) -> None:
    """An impossible option is a ValueError naming it, before anything opens."""
    with pytest.raises(ValueError, match=next(iter(options))):
        ServerConfig(**options)  # type: ignore[arg-type]


def test_an_unknown_option_is_a_type_error() -> None:
    """A misspelt keyword fails loudly instead of being ignored."""
    with pytest.raises(TypeError):
        SyncServer(rate_limt=5)


async def test_serve_and_start_server_take_config_keywords(tmp_path: Path) -> None:
    """serve(), start_server() and SyncServer.start() accept today's keywords or a config."""
    async with serve(db_path=tmp_path / "a.sqlite3", allow_chaos=True, rate_burst=7) as server:
        assert server.config.allow_chaos
        assert server.config.rate_burst == 7
    config = ServerConfig(db_path=tmp_path / "b.sqlite3", token="t")
    started = await start_server(config=config)
    try:
        assert started.config.token == "t"
        assert started.port != 0
    finally:
        await started.close()
