"""The SQLite writer's memory of recent incidents, which answers the merge lookup.

SQLite keeps no spatial index of incidents (every index rows are added to costs pages at
each commit); the writer process, the only one adding incidents on SQLite, keeps those of
the last hours in an `IncidentIndex` instead and looks a report's candidates up there.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from dispatcher.incidents import IncidentIndex, MergeRule
from dispatcher.model import Point
from dispatcher.store.dbapi import LiteSql
from dispatcher.store.report_sql import RECENT_INCIDENTS, RECENT_SOURCES

log = logging.getLogger("dispatcher.store")

# The writer's memory holds the incidents that occurred this long before now; a report of
# an older strike looks its incidents up in the table.
MEMORY_HORIZON = timedelta(hours=6)


class IncidentMemory:
    """The SQLite writer's `IncidentIndex`, kept equal to the incidents table.

    Only the writer adds incidents on SQLite, and it adds those a transaction makes or joins
    here as it goes (`ReportWriter`); a failed commit makes it read the table again
    (`forget`). Should another connection write to the file (another process), SQLite's
    `data_version` tells, and the index is read from the table again too."""

    def __init__(self, merge: MergeRule) -> None:
        self.merge = merge
        self.index: IncidentIndex | None = None
        self._seen: tuple[int, int] | None = None  # (connection, data_version) of the last look
        self.reloaded = False  # the last sync read the table (another connection wrote)

    def sync(self, sql: LiteSql, now: datetime) -> IncidentIndex:
        """The index, read again if the table changed behind it; inside a write transaction."""
        seen = (id(sql.conn.connection.driver_connection), sql.data_version())
        index = self.index
        self.reloaded = index is None or seen != self._seen
        if index is None or seen != self._seen:
            if index is not None:
                log.warning("another connection wrote to the database: incidents read again")
            index = self.index = self._load(sql, now - MEMORY_HORIZON)
        elif now - MEMORY_HORIZON - index.since > timedelta(minutes=10):
            index.forget_before(now - MEMORY_HORIZON)
        self._seen = seen
        return index

    def _load(self, sql: LiteSql, since: datetime) -> IncidentIndex:
        index = IncidentIndex(self.merge, since=since)
        sources: dict[str, set[str]] = {}
        anchored: set[str] = set()
        for incident_id, source, own in sql.rows(RECENT_SOURCES, {"since": sql.at(since)}):
            sources.setdefault(incident_id, set()).add(source)
            if own:
                anchored.add(incident_id)
        for incident_id, kind, lat, lon, occurred_at in sql.rows(
            RECENT_INCIDENTS, {"since": sql.at(since)}
        ):
            at = sql.time(occurred_at)
            assert at is not None
            index.add(
                incident_id, kind, Point(lat, lon), at, sources.get(incident_id, ()),
                incident_id in anchored,
            )  # fmt: skip
        return index

    def forget(self) -> None:
        """After a failed commit nothing is known to be added; read again next time."""
        self.index = None
