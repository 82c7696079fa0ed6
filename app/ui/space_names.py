"""Space names as the demo takes them from its command line (no Qt here).

A space is what a key belongs to (an account, a document, a room): a device
sees the writes of the spaces it joined and no other. A name is 1–128 code
points, the same rule the server applies.
"""

from __future__ import annotations

from collections.abc import Sequence

from syncserver.protocol import DEFAULT_SPACE, MAX_SPACE_LENGTH

__all__ = [
    "DEFAULT_SPACE",
    "MAX_SPACES",
    "MAX_SPACE_LENGTH",
    "check_space_name",
    "parse_space_list",
    "space_of",
]

MAX_SPACES = 8
"""How many spaces ``--spaces`` takes: one colour each, and windows that still fit."""


def _shown(name: str) -> str:
    """A name quoted for an error line: escapes keep it on one line, long ones are cut."""
    return repr(name if len(name) <= 24 else name[:24] + "…")


def check_space_name(name: str) -> str:
    """``name`` if it is a valid space name, else ValueError saying why."""
    if not name:
        raise ValueError("a space name cannot be empty")
    if len(name) > MAX_SPACE_LENGTH:
        raise ValueError(
            f"space name {_shown(name)} is {len(name)} characters long; at most {MAX_SPACE_LENGTH}"
        )
    return name


def parse_space_list(text: str) -> tuple[str, ...]:
    """``"family, work"`` → ``("family", "work")``: 2 to :data:`MAX_SPACES` distinct
    names, each stripped of the spaces around it."""
    names = tuple(part.strip() for part in text.split(","))
    if len(names) < 2:
        raise ValueError(f"expected two or more names separated by commas, got {_shown(text)}")
    if len(names) > MAX_SPACES:
        raise ValueError(f"at most {MAX_SPACES} spaces, got {len(names)}")
    for name in names:
        check_space_name(name)
    repeated = next((name for i, name in enumerate(names) if name in names[:i]), None)
    if repeated is not None:
        raise ValueError(f"space {_shown(repeated)} is named twice")
    return names


def space_of(index: int, spaces: Sequence[str]) -> str:
    """The space of the device at ``index`` (Device A is 0): they take turns, so
    ``A, B`` puts devices 0, 2, 4… in A and 1, 3, 5… in B, and a reopened device
    goes back to its own space."""
    return spaces[index % len(spaces)] if spaces else DEFAULT_SPACE
