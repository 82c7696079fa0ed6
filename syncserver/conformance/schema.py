"""The protocol's JSON Schema, generated from the msgspec types in ``protocol.py``.

``python -m syncserver.conformance.schema`` rewrites
``syncserver/protocol.schema.json``; ``--check`` only says whether it is
current (exit 1 if not). The file is what other languages build against; the
types stay the one place a message is declared. Unlike the checks, this
module imports the types (and so msgspec).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from syncserver.protocol import PROTOCOL_VERSION, ClientMessage, ServerMessage

__all__ = ["SCHEMA_PATH", "build_schema", "main", "render_schema"]

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "protocol.schema.json"


def build_schema() -> dict[str, Any]:
    """Every message of protocol version 1, client and server side, as JSON Schema."""
    (client, server), components = msgspec.json.schema_components(
        [ClientMessage, ServerMessage], ref_template="#/$defs/{name}"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"optisync sync protocol {PROTOCOL_VERSION}",
        "description": (
            "One JSON object per websocket text frame. ClientMessage: what a client "
            "sends; ServerMessage: what the server sends. Receivers ignore fields they "
            "do not know (version 1 only ever adds fields). Generated from "
            "syncserver/protocol.py by `python -m syncserver.conformance.schema`; "
            "syncserver/PROTOCOL.md states the rules a schema cannot."
        ),
        "anyOf": [{"$ref": "#/$defs/ClientMessage"}, {"$ref": "#/$defs/ServerMessage"}],
        "$defs": {"ClientMessage": client, "ServerMessage": server, **components},
    }


def render_schema() -> str:
    """The file's text: stable key order, two-space indent, a final newline."""
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m syncserver.conformance.schema",
        description=f"Write the protocol's JSON Schema to {SCHEMA_PATH.name} from protocol.py.",
    )
    parser.add_argument(
        "--check", action="store_true", help="only check that the file is current (exit 1 if not)"
    )
    args = parser.parse_args(argv)
    text = render_schema()
    current = SCHEMA_PATH.read_text() if SCHEMA_PATH.exists() else ""
    if args.check:
        if current != text:
            print(f"{SCHEMA_PATH} is out of date: run python -m syncserver.conformance.schema",
                  file=sys.stderr)  # fmt: skip
            return 1
        return 0
    if current != text:
        SCHEMA_PATH.write_text(text)
        print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
