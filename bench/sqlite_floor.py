"""What SQLite alone costs for the rows of a report: the floor under the writer.

Writes the rows ingest writes for each report (an incident, the report, its group joins)
into a freshly migrated database with plain sqlite3, in transactions of `--per-transaction`,
with no decisions at all. `--old-schema` puts back what this stop removed (random incident
ids, SQLite's spatial index of incidents, group_reports by report) to show what they cost.

    .venv/bin/python bench/sqlite_floor.py [--reports 60000] [--per-transaction 3000]
        [--old-schema] [--no-foreign-keys] [--synchronous FULL|NORMAL]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from dispatcher.store import db
from dispatcher.store.report_sql import (
    INCIDENT_INSERT_COLUMNS,
    JOIN_INSERT_COLUMNS,
    REPORT_INSERT_COLUMNS,
)
from dispatcher.store.report_writer import new_incident_prefix


def insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reports", type=int, default=60_000)
    ap.add_argument("--per-transaction", type=int, default=3000)
    ap.add_argument("--old-schema", action="store_true")
    ap.add_argument("--no-foreign-keys", action="store_true", help="the service checks them")
    ap.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "floor.db"
        engine = db.create_engine(f"sqlite+aiosqlite:///{path}")
        asyncio.run(db.upgrade(engine))
        asyncio.run(engine.dispose())
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={args.synchronous}")
        con.execute(f"PRAGMA foreign_keys={'OFF' if args.no_foreign_keys else 'ON'}")
        if args.old_schema:
            con.execute(
                "CREATE INDEX ix_incidents_kind_lat ON incidents (kind, lat, lon, occurred_at)"
            )
            con.execute("CREATE INDEX ix_group_reports_report_pk ON group_reports (report_pk)")
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        groups = [f"g{n:031d}" for n in range(4)]
        for g in groups:
            con.execute(
                "INSERT INTO alert_groups (id, route_id, group_key, labels, receiver, created_at,"
                " pending, seq, group_interval_s, rules_version) VALUES (?, ?, '[]', '[]', 'x',"
                " ?, 1, 0, 120, 'v')",
                (g, g, now),
            )
        rng = random.Random(1)
        pk, count = 0, 0
        wall, cpu = time.perf_counter(), time.process_time()
        while pk < args.reports:
            incidents, rows, joins = [], [], []
            prefix = new_incident_prefix()
            for _ in range(min(args.per_transaction, args.reports - pk)):
                pk += 1
                count += 1
                iid = uuid.uuid4().hex if args.old_schema else f"{prefix}{count:08x}"
                lat, lon = 35.4 + rng.random() * 1.3, 36 + rng.random() * 1.8
                kind = rng.choice(["airstrike", "shelling", "missile"])
                incidents.append((iid, kind, "SY0700", lat, lon, now, now, False))
                rows.append((pk, f"src-{rng.randint(1, 40)}", f"r-{pk}", 1, kind, "unconfirmed",
                             now, now, lat, lon, None, "SY0700", 1, 2, 0, 0, None, "bench", "v",
                             iid))  # fmt: skip
                joins += [(g, pk, now) for g in rng.sample(groups, rng.choice([1, 1, 2]))]
            con.execute("BEGIN IMMEDIATE")
            con.executemany(insert("incidents", INCIDENT_INSERT_COLUMNS), incidents)
            con.executemany(insert("reports", REPORT_INSERT_COLUMNS), rows)
            con.executemany(insert("group_reports", JOIN_INSERT_COLUMNS), joins)
            con.execute("COMMIT")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"{'old' if args.old_schema else 'this'} schema, {args.reports} reports in "
            f"transactions of {args.per_transaction}: {args.reports / wall:,.0f} reports/s, "
            f"{wall / args.reports * 1e6:.1f} us a report ({cpu / args.reports * 1e6:.1f} us CPU)"
        )


if __name__ == "__main__":
    main()
