"""The store in memory, for tests that need its rooms but not a database.

`MemoryStore` keeps every protocol of `store/ports.py` (the pipeline's `PipelineStore`, the
outbox, keys, devices, silences, rule sets, health) over dictionaries shared by its rooms,
one module each as in `dispatcher/store/`. The contract suite (tests/contract/) runs one
set of tests against it, SQLite and PostgreSQL; docs/store.md says what it leaves out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from dispatcher.group import GroupTarget
from dispatcher.model import Report
from dispatcher.store.writer_wire import SaveResult
from dispatcher.testing.memory.admin import MemoryAdmin
from dispatcher.testing.memory.groups import MemoryGroups
from dispatcher.testing.memory.keys import MemoryKeys
from dispatcher.testing.memory.outbox import MemoryOutbox
from dispatcher.testing.memory.reports import MemoryReports

__all__ = ["MemoryAdmin", "MemoryStore"]


class MemoryStore(MemoryReports, MemoryGroups, MemoryOutbox, MemoryKeys, MemoryAdmin):
    """Every room of the store in memory."""

    async def ping(self) -> None:
        """Memory always answers."""

    async def close(self) -> None:
        """Nothing to let go of."""

    # `Store`'s conveniences that tests use.

    async def save_report(
        self,
        report: Report,
        *,
        targets: Sequence[GroupTarget],
        now: datetime,
        key_name: str,
        rules_version: str,
    ) -> SaveResult:
        (result,) = await self.save_reports(
            [(report, targets)], now=now, key_name=key_name, rules_version=rules_version
        )
        return result

    async def group_reports(self, group_id: str) -> list[Report]:
        """Every revision of every report that joined the group."""
        read = await self.flush_reads(
            group_id, leader_ids=[], silences_ending_after=datetime.max.replace(tzinfo=UTC),
            today=None,
        )  # fmt: skip
        return [report for _, report in read.reports] if read is not None else []

    async def count_reports(self) -> int:
        return len(self.t.reports)
