"""The rule set in force: what every request and tick reads, swapped whole on reload."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from dispatcher.rules.load import RuleSet


@dataclass
class LiveRules:
    current: RuleSet
    path: Path
    loaded_at: datetime
    how: str = "start-up"
    last_errors: list[str] = field(default_factory=list)
