"""The rule set in force: what every request and tick reads, swapped whole on reload.

A reload does everything that can fail (read, parse, check, build the spatial index) before
it touches the rule set in force, so a broken edit leaves the last good rules serving. Its
errors are kept for `GET /v1/rules/status` and written to the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from dispatcher.clock import Clock
from dispatcher.rules.errors import RulesInvalid
from dispatcher.rules.load import FILES, OPTIONAL_FILES, RuleSet, load_rules

log = logging.getLogger("dispatcher.rules")


@dataclass
class LiveRules:
    current: RuleSet
    path: Path
    loaded_at: datetime
    how: str = "start-up"
    last_errors: list[str] = field(default_factory=list)
    last_attempt_at: datetime | None = None
    # Called with each rule set applied after start-up (the store records it).
    on_applied: Callable[[RuleSet, str, datetime], Awaitable[None]] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _stamps: tuple[tuple[str, int, int], ...] = ()

    async def reload(self, how: str, clock: Clock) -> bool:
        """Load the rules again; swap them in if they are valid. True if applied."""
        async with self._lock:
            self.last_attempt_at = clock()
            # Stamps first: an edit saved while we load is seen by the next look.
            self._stamps = await asyncio.to_thread(self._file_stamps)
            try:
                ruleset = await asyncio.to_thread(load_rules, self.path)
            except RulesInvalid as exc:
                self.last_errors = [str(e) for e in exc.errors]
                log.error(
                    "rules reload (%s) refused, still serving version %s:\n  %s",
                    how,
                    self.current.version,
                    "\n  ".join(self.last_errors),
                )
                return False
            self.last_errors = []
            if ruleset.version == self.current.version:
                return True
            before = self.current.version
            self.current, self.loaded_at, self.how = ruleset, clock(), how
            log.info("rules version %s applied (%s), was %s", ruleset.version, how, before)
            if self.on_applied is not None:
                await self.on_applied(ruleset, how, self.loaded_at)
            return True

    def _file_stamps(self) -> tuple[tuple[str, int, int], ...]:
        """The rule files' and boundary files' names, times and sizes."""
        stamps = []
        paths = [self.path / name for name in (*FILES, *OPTIONAL_FILES)]
        paths += sorted(self.path.rglob("*.geojson"))
        for path in paths:
            try:
                st = path.stat()
                stamps.append((str(path), st.st_mtime_ns, st.st_size))
            except OSError:
                stamps.append((str(path), 0, 0))
        return tuple(stamps)

    async def remember_files(self) -> None:
        """Note the files' state as loaded, so the watch sees the next edit as a change."""
        self._stamps = await asyncio.to_thread(self._file_stamps)

    async def reload_if_changed(self, clock: Clock) -> bool | None:
        """Reload when a rules file changed since the last look; None if nothing changed."""
        if await asyncio.to_thread(self._file_stamps) == self._stamps:
            return None
        return await self.reload("file change", clock)
