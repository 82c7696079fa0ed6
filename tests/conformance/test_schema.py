"""The published JSON Schema agrees with the msgspec types it is generated from."""

from __future__ import annotations

import json
from typing import get_args

from syncserver.conformance.schema import SCHEMA_PATH, build_schema, main, render_schema
from syncserver.protocol import PROTOCOL_VERSION, ClientMessage, ServerMessage


def test_the_committed_schema_matches_the_types():
    """syncserver/protocol.schema.json is what the types generate today."""
    assert SCHEMA_PATH.read_text() == render_schema(), (
        "protocol.py changed: run python -m syncserver.conformance.schema and commit the file"
    )


def test_every_message_type_has_a_schema_with_its_tag():
    """Each client and server message has a definition whose "type" is its tag."""
    definitions = json.loads(SCHEMA_PATH.read_text())["$defs"]
    for union in (ClientMessage, ServerMessage):
        for message in get_args(union):
            schema = definitions[message.__name__]
            assert schema["properties"]["type"] == {"enum": [message.__struct_config__.tag]}
            assert "type" in schema["required"]
            assert schema.get("additionalProperties", True) is not False  # unknown fields pass


def test_the_schema_names_the_protocol_version():
    """The schema's title carries the version the types declare."""
    assert build_schema()["title"].endswith(f" {PROTOCOL_VERSION}")


def test_the_check_mode_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    """--check exits 1 with one line when the file differs, 0 when it is current."""
    stale = tmp_path / "protocol.schema.json"
    stale.write_text("{}\n")
    monkeypatch.setattr("syncserver.conformance.schema.SCHEMA_PATH", stale)
    assert main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main([]) == 0
    assert main(["--check"]) == 0
