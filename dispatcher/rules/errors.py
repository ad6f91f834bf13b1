"""Rule errors written for operators: `file:line:column: message`, with a fix where we can.

Every check adds to one `Problems` list, so an operator sees every mistake in one run.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

Severity = Literal["error", "warning"]


class Loc(NamedTuple):
    """Where a value stands: a tuple, so cheap to make for every node of a large file."""

    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class RuleError:
    loc: Loc
    message: str
    severity: Severity = "error"

    @property
    def file(self) -> str:
        return self.loc.file

    @property
    def line(self) -> int:
        return self.loc.line

    @property
    def column(self) -> int:
        return self.loc.column

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.loc}: {prefix}{self.message}"


class RulesInvalid(Exception):
    """The rules cannot be used; `errors` holds every error found, in file order."""

    def __init__(self, errors: list[RuleError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


def suggest(word: str, choices: Iterable[str]) -> str:
    """ "; did you mean 'x'?" when a choice is close to `word`, else ""."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


@dataclass
class Problems:
    items: list[RuleError] = field(default_factory=list)

    def error(self, loc: Loc, message: str) -> None:
        self.items.append(RuleError(loc, message))

    def warning(self, loc: Loc, message: str) -> None:
        self.items.append(RuleError(loc, message, "warning"))

    @property
    def errors(self) -> list[RuleError]:
        return sorted((e for e in self.items if e.severity == "error"), key=lambda e: e.loc)

    @property
    def warnings(self) -> list[RuleError]:
        return sorted((e for e in self.items if e.severity == "warning"), key=lambda e: e.loc)
