"""What optisync's commands share: one-line errors, ``--version``, checked numbers.

A user's mistake on the command line is one line on stderr, never a
traceback: exit code 2 for a wrong option (:data:`USAGE`), 1 for something
the command could not do at run time (:data:`RUNTIME`), such as a port in use.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Final, NoReturn

__all__ = [
    "RUNTIME",
    "USAGE",
    "CommandLineError",
    "OneLineParser",
    "bounded_float",
    "bounded_int",
    "fail",
    "package_version",
]

USAGE: Final = 2
RUNTIME: Final = 1


class CommandLineError(Exception):
    """Something the user can fix; ``str()`` is the whole message, ``code`` the exit code."""

    def __init__(self, message: str, code: int = RUNTIME) -> None:
        super().__init__(message)
        self.code = code


def package_version() -> str:
    """optisync's installed version (``unknown`` when run from an uninstalled tree)."""
    try:
        return version("optisync")
    except PackageNotFoundError:
        return "unknown"


def fail(prog: str, message: str, code: int = RUNTIME) -> NoReturn:
    """Print ``prog: error: message`` on one line and exit with ``code``."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and point to ``--help``."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, f"{message} (see {self.prog} --help)", USAGE)


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for an integer in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            number = int(text.strip().replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if number < low or (high is not None and number > high):
            span = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {number}")
        return number

    return parse


def bounded_float(low: float, *, inclusive: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number above ``low`` (or equal, if ``inclusive``)."""

    def parse(text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(number) or number < low or (number == low and not inclusive):
            bound = f"at least {low:g}" if inclusive else f"more than {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return number

    return parse
