"""PROTOCOL.md stays in step with the kit and with itself."""

from __future__ import annotations

import re

from syncserver.conformance.registry import CHECKS
from syncserver.conformance.runner import select

from .conftest import ROOT

DOCUMENT = (ROOT / "syncserver" / "PROTOCOL.md").read_text()


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_link_inside_the_document_has_its_heading():
    """Each [text](#anchor) names a heading of PROTOCOL.md."""
    anchors = {_slug(line.lstrip("#")) for line in DOCUMENT.splitlines() if line.startswith("#")}
    links = set(re.findall(r"\]\(#([^)]+)\)", DOCUMENT))
    assert links - anchors == set()


def test_every_check_the_document_cites_exists_and_every_check_is_cited():
    """The italic check names are kit checks, and every kit check backs a rule here."""
    select([])  # the runner imports every check module
    names = {check.name for check in CHECKS}
    cited = set(re.findall(r"\*([a-z0-9]+(?:_[a-z0-9]+)+)\*", DOCUMENT))
    assert cited - names == set(), "cited but not in the kit"
    assert names - cited == set(), "in the kit but not cited in PROTOCOL.md"


def test_the_document_lists_every_error_code_the_server_sends():
    """Each code of protocol.ERROR_CODES has a row in the error table."""
    from syncserver.protocol import ERROR_CODES

    for code in ERROR_CODES:
        assert f"| `{code}` |" in DOCUMENT, code


def test_the_document_lists_every_field_of_the_observer_feed():
    """server_state's table names every field of ServerState, DeviceInfo and StateEntry."""
    import msgspec

    from syncserver.protocol import DeviceInfo, ServerState, StateEntry

    start = DOCUMENT.index("### `observe` / `unobserve`")
    section = DOCUMENT[start : DOCUMENT.index("### The same, in-process", start)]
    fields = msgspec.structs.fields
    for field in fields(ServerState):
        assert f"| `{field.encode_name}` |" in section, field.encode_name
    for field in fields(DeviceInfo):
        assert f"| `devices[].{field.encode_name}` |" in section, field.encode_name
    values_row = next(line for line in section.splitlines() if line.startswith("| `values` |"))
    for field in fields(StateEntry):
        assert f"`{field.encode_name}`" in values_row, field.encode_name
