"""The argparse pieces every command shares: the parser, the option types, common options.

A command's parser is filled in only when that command is chosen (or its help
is asked for): :class:`Parser` takes a ``configure`` callback that adds the
command's options, so ``orgo-async --help`` imports no command module at all.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from ._output import UsageError


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (raised, not printed and exited).

    Args:
        configure: Adds the parser's arguments, once, before it first parses
            or formats its help (a command's options, imported on demand).
    """

    def __init__(
        self, *args: Any, configure: Callable[[Parser], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._configure = configure

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")

    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        self._complete()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._complete()
        return super().format_usage()

    def format_help(self) -> str:
        self._complete()
        return super().format_help()

    def _complete(self) -> None:
        configure, self._configure = self._configure, None
        if configure is not None:
            configure(self)


# --------------------------------------------------------------------------- option types


def int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``low`` (and <= ``high``)."""
    bound = f">= {low}" if high is None else f"from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number {bound}; got {text!r}")
        return value

    return parse


def float_above(low: float, *, inclusive: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number > ``low`` (>= with ``inclusive``)."""
    relation = ">=" if inclusive else ">"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = value >= low if inclusive else value > low
        if not (ok and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a number {relation} {low:g}; got {text!r}")
        return value

    return parse


positive_float = float_above(0)
"""An argparse type: a finite number > 0."""

non_negative_float = float_above(0, inclusive=True)
"""An argparse type: a finite number >= 0."""


# --------------------------------------------------------------------------- common options


def add_global_options(parser: argparse.ArgumentParser, *, repeated: bool) -> None:
    """The options every command takes, before or after the command's name.

    On a command's own parser (``repeated``) they default to "not given", so
    that they do not overwrite a value given before the command's name.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if repeated else value

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--base-url",
        default=default(None),
        metavar="URL",
        help="the API root (default: ORGO_BASE_URL); the key is read from ORGO_API_KEY",
    )
    group.add_argument(
        "--emulator",
        action="store_true",
        default=default(False),
        help="run against a local emulator started in a child process, stopped afterwards",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default(False),
        help="debug logs on stderr, secrets blanked (they cost client CPU: not for measurements)",
    )


def add_workspace(parser: argparse.ArgumentParser, help: str) -> None:
    """``--workspace NAME_OR_ID`` (default: none given)."""
    parser.add_argument("--workspace", metavar="NAME_OR_ID", default=None, help=help)


def add_id(parser: argparse.ArgumentParser) -> None:
    """The computer ``ID`` argument (``new``: launch one), with ``--workspace`` for ``new``."""
    parser.add_argument(
        "id",
        metavar="ID",
        help="the computer's id; 'new' launches one first (in --workspace) and deletes it "
        "at the end",
    )
    add_workspace(parser, "where 'new' launches its computer (default: orgo-async)")


def add_json(parser: argparse.ArgumentParser, help: str) -> None:
    """``--json``: print JSON instead of text."""
    parser.add_argument("--json", action="store_true", help=help)
