"""The `dispatcher` command: serve, keys new/list/revoke, leaders pair, rules
check/show/test/diff, regions import, silences add/list/expire, db upgrade/backup.

Each subcommand is a thin shell over the library: it reads settings, calls one function,
prints for a person, and exits 0 on success, 1 on a problem the operator must fix.

Longer than 400 lines: one function per subcommand and the argument parser that names
them all; each function is short and calls into the library.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dispatcher import __version__, logs
from dispatcher.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from dispatcher.rules.load import RuleSet
    from dispatcher.store.access import KeyRow, Pairing
    from dispatcher.store.repo import Store
    from dispatcher.web.tls import ServerCertificate

DEFAULT_CONFIG = Path("config.yaml")
GC_THRESHOLDS = (10_000, 10, 10)  # the cyclic GC's, once started (Python's own: 700, 10, 10)


def _settings(path: Path | None) -> Settings:
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    return load_settings(path)


def _fail(lines: list[str], *, header: str) -> int:
    print(header, file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)
    return 1


async def _serve(settings: Settings) -> None:
    from aiohttp import web

    from dispatcher.app import build, make_app
    from dispatcher.web.access import ACCESS
    from dispatcher.web.tls import ServerCertificate

    tls = settings.server.tls
    certificate = ServerCertificate(tls) if tls is not None else None
    context = certificate.listening if certificate is not None else None
    logs.configure(settings.logging.format, settings.logging.level)
    json_lines = settings.logging.format == "json"
    banner = logging.getLogger("dispatcher")

    def say(line: str) -> None:
        # What the service says at start and stop: plain lines on stdout for a person, or
        # log records like every other line when the logs are JSON.
        if json_lines:
            banner.info("%s", line)
        else:
            print(line, flush=True)

    service = await build(settings)
    app = make_app(service)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.server.host, settings.server.port, ssl_context=context)
        await site.start()
        # What start-up built (modules, rules, SQLAlchemy's caches) lives as long as the
        # process: keep the cyclic GC from walking it again in every full collection, which
        # a big fan-out triggers several times (docs/performance.md, "Figures behind the code").
        gc.freeze()
        # A young collection every 700 objects walked the requests in flight (dozens, each
        # waiting on the writer) again and again and moved them to the old generations,
        # whose growth then set off full collections: 30-40 us of a single report's CPU
        # under load, 9-11 us with this (docs/performance.md, stop 15).
        gc.set_threshold(*GC_THRESHOLDS)
        port = runner.addresses[0][1]  # the real one when the config asks for port 0
        app[ACCESS].public_url = settings.server.base_url(port)
        scheme = "https" if context is not None else "http"
        for line in service.banner(f"{scheme}://{settings.server.host}:{port}"):
            say(line)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        reloads: set[asyncio.Task[object]] = set()

        def on_sighup() -> None:
            task: asyncio.Task[object] = loop.create_task(
                service.rules.reload("SIGHUP", service.pipeline.clock)
            )
            reloads.add(task)
            task.add_done_callback(reloads.discard)
            if certificate is not None:
                cert = loop.create_task(_reload_tls(certificate))
                reloads.add(cert)
                cert.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_sighup)
        await stop.wait()
        say("dispatcher stopping")
    finally:
        await runner.cleanup()
        await service.close()


async def _reload_tls(certificate: ServerCertificate) -> None:
    try:
        await certificate.reload()
    except ConfigError as exc:
        logging.getLogger("dispatcher").error("%s; the old certificate keeps serving", exc)
    else:
        logging.getLogger("dispatcher").info(
            "certificate %s loaded again (SIGHUP)", certificate.tls.cert
        )


def cmd_serve(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    from dispatcher.rules.errors import RulesInvalid

    try:
        settings = _settings(args.config)
        asyncio.run(_serve(settings))
    except ConfigError as exc:
        return _fail(exc.problems, header="dispatcher: the configuration has problems:")
    except RulesInvalid as exc:
        return _fail([str(e) for e in exc.errors], header="dispatcher: the rules have errors:")
    except (OperationalError, OSError) as exc:
        where = make_url(settings.storage.url).render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return _fail(
            [f"storage.url {where}: {reason}"],
            header="dispatcher: cannot open the store (or listen); is the database running?",
        )
    return 0


def cmd_keys_new(args: argparse.Namespace) -> int:
    from dispatcher.settings import ApiKey
    from dispatcher.web.auth import hash_key, new_key

    scopes = list(dict.fromkeys(args.scope))
    if "devices:write" in scopes and not args.leader:
        print(
            "dispatcher: a devices:write key must be bound to a leader (--leader)", file=sys.stderr
        )
        return 1
    key = new_key()
    if args.config_entry:
        entry = ApiKey(name=args.name, sha256=hash_key(key), scopes=scopes, leader=args.leader)
        print(f"key: {key}")
        print("It is shown once; the service keeps only its hash. Add this entry to auth.keys:")
        print(json.dumps(entry.model_dump(exclude_none=True)))
        return 0
    try:
        settings = _settings(args.config)
        if args.leader is not None:
            rules = _rules_or_fail(args)
            if rules is None:
                return 1
            if args.leader not in rules.leaders:
                return _fail(
                    [f"no leader {args.leader!r} in {settings.rules.path}"],
                    header="dispatcher: cannot make the key:",
                )
        row = asyncio.run(_add_key(settings, args.name, hash_key(key), scopes, args.leader))
    except ConfigError as exc:
        return _fail(exc.problems, header="dispatcher: the configuration has problems:")
    print(f"key: {key}")
    print(f"id: {row.id}  name: {row.name}  scopes: {','.join(row.scopes)}"
          + (f"  leader: {row.leader_id}" if row.leader_id else ""))  # fmt: skip
    print("It is shown once; the service keeps only its hash. It works now: no restart needed.")
    return 0


@contextlib.asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[Store]:
    """The service's database, migrated, for a command run beside the service: on SQLite
    each transaction waits for the lock (busy_timeout) rather than failing."""
    from dispatcher.store import db
    from dispatcher.store.repo import Store

    engine = db.create_engine(
        settings.storage.url, sqlite_synchronous=settings.storage.sqlite_synchronous,
        immediate=True,
    )  # fmt: skip
    store = Store(engine)
    try:
        await db.upgrade(engine)
        yield store
    finally:
        await store.close()


def _by() -> str:
    import getpass

    try:
        return f"CLI ({getpass.getuser()})"
    except (OSError, KeyError):
        return "CLI"


def _now() -> datetime:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def _add_key(
    settings: Settings, name: str, sha256: str, scopes: list[str], leader: str | None
) -> KeyRow:
    async with _store(settings) as store:
        return await store.add_key(
            name=name, sha256=sha256, scopes=scopes, leader_id=leader, now=_now(),
            created_by=_by(),
        )  # fmt: skip


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at is not None else "-"


def cmd_keys_list(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args.config)
        rows = asyncio.run(_list_keys(settings))
    except ConfigError as exc:
        return _fail(exc.problems, header="dispatcher: the configuration has problems:")
    table = [("ID", "NAME", "SCOPES", "LEADER", "CREATED", "LAST USED", "REVOKED")]
    for k in settings.auth.keys:
        table.append((f"config:{k.name}", k.name, ",".join(k.scopes), k.leader or "-",
                      "(config)", "-", "-"))  # fmt: skip
    for r in rows:
        table.append((r.id, r.name, ",".join(r.scopes), r.leader_id or "-", _when(r.created_at),
                      _when(r.last_used_at), _when(r.revoked_at)))  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


async def _list_keys(settings: Settings) -> list[KeyRow]:
    async with _store(settings) as store:
        return await store.list_keys()


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args.config)
        return asyncio.run(_revoke(settings, args.key))
    except ConfigError as exc:
        return _fail(exc.problems, header="dispatcher: the configuration has problems:")


async def _revoke(settings: Settings, wanted: str) -> int:
    async with _store(settings) as store:
        rows = await store.list_keys()
        found = [r for r in rows if r.id == wanted]
        if not found:
            found = [r for r in rows if r.name == wanted and r.revoked_at is None]
        if not found:
            in_config = any(k.name == wanted.removeprefix("config:") for k in settings.auth.keys)
            why = (
                f"the key '{wanted}' is in the config file (auth.keys): remove it there and "
                "restart the service"
                if in_config
                else f"no key with the id or name {wanted!r} (see `dispatcher keys list`)"
            )
            return _fail([why], header="dispatcher: nothing revoked:")
        if len(found) > 1:
            return _fail(
                [f"{r.id}  created {_when(r.created_at)}  {','.join(r.scopes)}" for r in found],
                header=f"dispatcher: {len(found)} keys are named {wanted!r}; give the id of one:",
            )
        done = await store.revoke_key(found[0].id, now=_now(), by=_by())
    assert done is not None
    if done.already:
        print(f"{done.key.id} ({done.key.name}) was revoked already, at "
              f"{_when(done.key.revoked_at)}")  # fmt: skip
    else:
        print(f"revoked {done.key.id} ({done.key.name}): refused from now on (within a second "
              "on every instance)")  # fmt: skip
    print(f"{done.phones} phone(s) disabled, {done.pushes} pending push(es) not sent")
    return 0


def cmd_leaders_pair(args: argparse.Namespace) -> int:
    """A one-time code for a leader's phone, with the app's URL and a QR code."""
    import io
    from datetime import timedelta

    import segno

    from dispatcher.pairing import digest, new_code, shown

    if not 1 <= args.minutes <= 24 * 60:
        return _fail(["--minutes: from 1 to 1440"], header="dispatcher: cannot pair a phone:")
    try:
        settings = _settings(args.config)
        rules = _rules_or_fail(args)
        if rules is None:
            return 1
        if args.leader not in rules.leaders:
            return _fail(
                [f"no leader {args.leader!r} in {settings.rules.path}"],
                header="dispatcher: cannot pair a phone:",
            )
        code = new_code()
        now = _now()

        async def add() -> Pairing:
            async with _store(settings) as store:
                return await store.add_pairing(
                    sha256=digest(code), leader_id=args.leader, now=now,
                    expires_at=now + timedelta(minutes=args.minutes), created_by=_by(),
                )  # fmt: skip

        pairing = asyncio.run(add())
    except ConfigError as exc:
        return _fail(exc.problems, header="dispatcher: the configuration has problems:")
    leader = rules.leaders[args.leader]
    url = f"{settings.server.base_url()}/app/#pair={code}"
    qr = io.StringIO()
    segno.make(url, error="m").terminal(out=qr, compact=True)
    print(f"pairing code for {leader.name} ({leader.id}): {shown(code)}")
    print(f"valid until {pairing.expires_at.strftime('%Y-%m-%d %H:%M')} UTC, once "
          f"({args.minutes} min); the phone opens {url}")  # fmt: skip
    print(qr.getvalue(), end="")
    return 0


def cmd_rules_check(args: argparse.Namespace) -> int:
    from dispatcher.rules.load import check_rules

    path = args.path or _settings(args.config).rules.path
    problems = check_rules(path)
    for p in problems:
        print(p)
    errors = [p for p in problems if p.severity == "error"]
    warnings = len(problems) - len(errors)
    print(f"{path}: {len(errors)} error(s), {warnings} warning(s)")
    return 1 if errors else 0


def _rules_or_fail(args: argparse.Namespace) -> RuleSet | None:
    from dispatcher.rules.errors import RulesInvalid
    from dispatcher.rules.load import load_rules

    path = args.path or _settings(args.config).rules.path
    try:
        return load_rules(path)
    except RulesInvalid as exc:
        _fail([str(e) for e in exc.errors], header=f"dispatcher: {path} has errors:")
        return None


def cmd_rules_show(args: argparse.Namespace) -> int:
    from dispatcher.rules.explain import show

    rules = _rules_or_fail(args)
    if rules is None:
        return 1
    print("\n".join(show(rules)))
    return 0


def cmd_rules_test(args: argparse.Namespace) -> int:
    """Where a report would go, without sending anything."""
    from datetime import UTC, datetime

    from dispatcher.intake import parse_report, to_report
    from dispatcher.rules.explain import explain, explain_text

    rules = _rules_or_fail(args)
    if rules is None:
        return 1
    if args.report is not None:
        data = json.loads(args.report.read_text(encoding="utf-8"))
    else:
        data = {
            "id": "dry-run",
            "source": args.source,
            "kind": args.kind,
            "occurred_at": datetime.now(UTC).isoformat(),
            "status": args.status,
            "casualties": {
                "killed": args.killed,
                "injured": args.injured,
                "trapped": args.trapped,
            },
        }
        if args.region:
            data["region"] = args.region
        if args.lat is not None and args.lon is not None:
            data["location"] = {"lat": args.lat, "lon": args.lon}
    parsed = parse_report(data, now=datetime.now(UTC), resolve_region=rules.resolve_region)
    if isinstance(parsed, list):
        return _fail([f"{e.field}: {e.message}" for e in parsed], header="the report is invalid:")
    lat = parsed.location.lat if parsed.location else None
    lon = parsed.location.lon if parsed.location else None
    report = to_report(parsed, region=rules.locate(parsed.region, lat, lon))
    result = explain(rules, report)
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else
          "\n".join(explain_text(result)))  # fmt: skip
    return 0


def cmd_regions_import(args: argparse.Namespace) -> int:
    """A COD-AB or geoBoundaries layer into region entries with GeoJSON outlines."""
    from dispatcher.rules.boundaries import Fields, ImportError_
    from dispatcher.rules.regions_import import import_regions

    folder = Path(args.rules or _settings(args.config).rules.path)
    fields = Fields(
        id=args.id_field,
        name=args.name_field,
        name_ar=args.name_ar_field,
        parent=args.parent_field,
        aliases=tuple(args.alias_field or ()),
    )
    try:
        result = import_regions(
            folder,
            args.file,
            fields,
            parent=args.parent,
            name=args.name,
            precision=args.precision,
            replace_existing=args.replace,
        )
    except (OSError, ValueError, ImportError_) as exc:
        return _fail([str(exc)], header=f"dispatcher: cannot import {args.file}:")
    if result.errors:
        return _fail(
            [str(e) for e in result.errors],
            header=f"dispatcher: nothing imported; the rules would have errors "
            f"(fix them, or use --replace for regions already in {folder / 'regions.yaml'}):",
        )
    print(
        f"imported {len(result.regions)} regions into {folder / 'regions.yaml'}, "
        f"outlines in {result.boundary}"
        + (f"; replaced {', '.join(result.replaced)}" if result.replaced else "")
    )
    for note in result.notes:
        print(f"  note: {note}")
    return 0


def cmd_rules_diff(args: argparse.Namespace) -> int:
    """Who would gain or lose which alerts if NEW replaced OLD, over recorded reports."""
    from datetime import UTC, datetime

    from dispatcher import strictjson
    from dispatcher.rules.diff import diff, diff_json, diff_text
    from dispatcher.rules.errors import RulesInvalid
    from dispatcher.rules.load import load_rules

    loaded = []
    for path in (args.old, args.new):
        try:
            loaded.append(load_rules(path))
        except RulesInvalid as exc:
            return _fail([str(e) for e in exc.errors], header=f"dispatcher: {path} has errors:")
    old, new = loaded
    reports: list[tuple[int, object]] = []
    bad: list[str] = []
    try:
        raw = args.reports.read_bytes()
    except OSError as exc:
        return _fail([str(exc)], header=f"dispatcher: cannot read {args.reports}:")
    # Split as the API splits NDJSON: U+2028 and friends inside a JSON string are text.
    for n, line in strictjson.numbered_lines(raw):
        try:
            reports.append((n, strictjson.loads(line)))
        except strictjson.NotJson as exc:
            bad.append(f"line {n}: not JSON ({exc})")
    result = diff(old, new, reports, datetime.now(UTC))
    result.invalid[:0] = bad
    if args.json:
        print(json.dumps(diff_json(result), ensure_ascii=False, indent=2))
    else:
        print("\n".join(diff_text(result, old, new)))
    return 0


def cmd_silences(args: argparse.Namespace) -> int:
    """Add, list or expire silences through the running service's API, like amtool."""

    from dispatcher.client import Client, Refused, Unreachable, silence_line

    key = args.key or os.environ.get("DISPATCHER_API_KEY")
    if not key:
        return _fail(["give --key or set DISPATCHER_API_KEY (an admin key to add or expire, "
                      "a read key to list)"], header="dispatcher: no API key:")  # fmt: skip
    url = args.url
    if url is None:
        server = _settings(args.config).server
        url = f"http://{server.host}:{server.port}"
    client = Client(url, key)
    if args.silences_cmd == "add":
        matchers = {"regions": args.region or [], "receivers": args.receiver or [],
                    "routes": args.route or [], "kinds": args.kind or []}  # fmt: skip
        call = client.add_silence(matchers=matchers, duration=args.duration, author=args.author,
                                  reason=args.reason, starts_at=args.starts_at)  # fmt: skip
    elif args.silences_cmd == "expire":
        call = client.expire_silence(args.id)
    else:
        call = client.list_silences(expired_too=args.all)
    try:
        silences = asyncio.run(call)
    except Unreachable as exc:
        return _fail([str(exc)], header="dispatcher: the service did not answer:")
    except Refused as exc:
        return _fail(exc.lines, header=f"dispatcher: refused ({exc.status}):")
    for s in silences:
        print(silence_line(s))
    return 0


async def _upgrade(settings: Settings) -> tuple[str | None, str | None]:
    from dispatcher.store import db

    engine = db.create_engine(settings.storage.url)
    try:
        return await db.upgrade(engine)
    finally:
        await engine.dispose()


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    try:
        before, after = asyncio.run(_upgrade(_settings(args.config)))
    except ConfigError as exc:
        return _fail(exc.problems, header="dispatcher: the configuration has problems:")
    print(f"schema at {after}" + ("" if before == after else f" (was {before})"))
    return 0


def cmd_db_backup(args: argparse.Namespace) -> int:
    """A consistent copy of the SQLite store, while the service runs."""
    from dispatcher.store.backup import BackupError, backup_sqlite

    try:
        made = backup_sqlite(_settings(args.config).storage.url, args.path)
    except ConfigError as exc:
        return _fail(exc.problems, header="dispatcher: the configuration has problems:")
    except BackupError as exc:
        return _fail([str(exc)], header="dispatcher: no backup made:")
    print(f"backed up to {made.describe()}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dispatcher", description=__doc__)
    p.add_argument("--version", action="version", version=f"dispatcher {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--config", type=Path, default=None, help="config file (default: ./config.yaml)"
        )

    serve = sub.add_parser("serve", help="run the service")
    with_config(serve)
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_cmd", required=True)
    new = keys.add_parser("new", help="make a key and print its config entry")
    new.add_argument("--name", required=True)
    new.add_argument(
        "--scope",
        required=True,
        action="append",
        choices=["reports:write", "devices:write", "read", "admin"],
        help="repeat for several scopes",
    )
    new.add_argument("--leader", help="the leader a device key registers phones for")
    new.add_argument(
        "--config-entry",
        action="store_true",
        help="print an auth.keys entry for the config file instead (touches no database)",
    )
    with_config(new)
    new.set_defaults(func=cmd_keys_new, path=None)
    klist = keys.add_parser("list", help="the keys: config and database; never the keys")
    with_config(klist)
    klist.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser(
        "revoke", help="refuse a key from now on, and disable the phones it registered"
    )
    revoke.add_argument("key", metavar="ID|NAME")
    with_config(revoke)
    revoke.set_defaults(func=cmd_keys_revoke)

    leaders = sub.add_parser("leaders", help="team leaders").add_subparsers(
        dest="leaders_cmd", required=True
    )
    pair = leaders.add_parser(
        "pair", help="a one-time code (and QR code) that gives a leader's phone its own key"
    )
    pair.add_argument("leader", help="a leader id from the rules")
    pair.add_argument("--minutes", type=int, default=15, help="how long the code works")
    with_config(pair)
    pair.set_defaults(func=cmd_leaders_pair, path=None)

    rules = sub.add_parser("rules", help="operators' rules").add_subparsers(
        dest="rules_cmd", required=True
    )
    check = rules.add_parser("check", help="report every error in the rules, with file:line")
    check.add_argument("path", nargs="?", type=Path)
    with_config(check)
    check.set_defaults(func=cmd_rules_check)

    show = rules.add_parser("show", help="print the route tree")
    show.add_argument("path", nargs="?", type=Path)
    with_config(show)
    show.set_defaults(func=cmd_rules_show)

    test = rules.add_parser("test", help="where would a report go? (a dry run, sends nothing)")
    test.add_argument("path", nargs="?", type=Path)
    with_config(test)
    test.add_argument("--report", type=Path, help="a report as JSON, as a reporter posts it")
    test.add_argument("--region", help="a region id")
    test.add_argument("--lat", type=float)
    test.add_argument("--lon", type=float)
    test.add_argument("--kind", default="airstrike")
    test.add_argument("--status", default="unconfirmed")
    test.add_argument("--source", default="dry-run")
    for count in ("killed", "injured", "trapped"):
        test.add_argument(f"--{count}", type=int, default=0)
    test.add_argument("--json", action="store_true", help="machine-readable output")
    test.set_defaults(func=cmd_rules_test)

    regions = sub.add_parser("regions", help="the region tree").add_subparsers(
        dest="regions_cmd", required=True
    )
    imp = regions.add_parser(
        "import",
        help="turn a GeoJSON boundary layer (OCHA COD-AB, geoBoundaries) into regions",
    )
    imp.add_argument("file", type=Path, help="a GeoJSON FeatureCollection of (multi)polygons")
    imp.add_argument("--id-field", required=True, help="e.g. ADM2_PCODE (COD-AB), shapeID")
    imp.add_argument("--name-field", required=True, help="e.g. ADM2_EN, shapeName")
    imp.add_argument("--name-ar-field", help="e.g. ADM2_AR")
    imp.add_argument("--alias-field", action="append", help="more names, e.g. ADM2_REF")
    parent = imp.add_mutually_exclusive_group(required=True)
    parent.add_argument("--parent-field", help="e.g. ADM1_PCODE: each feature's parent")
    parent.add_argument("--parent", help="one parent region id for every feature")
    imp.add_argument("--name", help="the boundary file's name (default: the layer's)")
    imp.add_argument(
        "--precision",
        type=float,
        default=1e-5,
        help="round outlines to this many degrees (default 0.00001, about 1 m; 0 keeps all)",
    )
    imp.add_argument(
        "--replace",
        action="store_true",
        help="replace regions already in regions.yaml with the same id (their aliases stay)",
    )
    imp.add_argument("--rules", type=Path, help="the rules folder (default: from the config)")
    with_config(imp)
    imp.set_defaults(func=cmd_regions_import)

    rdiff = rules.add_parser(
        "diff", help="replay reports through two rule sets: who gains or loses which alerts"
    )
    rdiff.add_argument("old", type=Path, help="the rules in force, e.g. rules/")
    rdiff.add_argument("new", type=Path, help="the edited copy")
    rdiff.add_argument(
        "--reports", type=Path, required=True, help="reports as NDJSON, one per line"
    )
    rdiff.add_argument("--json", action="store_true", help="machine-readable output")
    rdiff.set_defaults(func=cmd_rules_diff)

    sil = sub.add_parser("silences", help="mute alerts for a while (through the API)")
    silsub = sil.add_subparsers(dest="silences_cmd", required=True)
    add = silsub.add_parser("add", help="silence groups matching all the given matchers")
    add.add_argument("--region", action="append", help="a region id or name (repeatable)")
    add.add_argument("--receiver", action="append", help="a team or leader id")
    add.add_argument("--route", action="append", help="a route name")
    add.add_argument("--kind", action="append", help="a kind of event")
    add.add_argument("--for", dest="duration", required=True, help="how long, e.g. 2h")
    add.add_argument("--starts-at", help="RFC 3339 time (default: now)")
    add.add_argument("--author", required=True)
    add.add_argument("--reason", required=True)
    lst = silsub.add_parser("list", help="active and pending silences")
    lst.add_argument("--all", action="store_true", help="expired ones too")
    exp = silsub.add_parser("expire", help="end a silence now")
    exp.add_argument("id")
    for sp in (add, lst, exp):
        sp.add_argument("--url", help="the service (default: server.host and port from config)")
        sp.add_argument("--key", help="an API key (default: $DISPATCHER_API_KEY)")
        with_config(sp)
        sp.set_defaults(func=cmd_silences)

    dbp = sub.add_parser("db", help="the store").add_subparsers(dest="db_cmd", required=True)
    upgrade = dbp.add_parser("upgrade", help="apply schema migrations")
    with_config(upgrade)
    upgrade.set_defaults(func=cmd_db_upgrade)
    bak = dbp.add_parser(
        "backup", help="copy the SQLite store to PATH, consistently, while the service runs"
    )
    bak.add_argument("path", type=Path, help="a new file (an existing one is not overwritten)")
    with_config(bak)
    bak.set_defaults(func=cmd_db_backup)
    return p


def main(argv: list[str] | None = None) -> int:
    logs.configure()  # `serve` switches to the configured format once it has read it
    args = parser().parse_args(argv)
    try:
        status = 130
        with contextlib.suppress(KeyboardInterrupt):
            status = int(args.func(args))
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return status
    except BrokenPipeError:
        # The reader went away (`dispatcher rules show | head -1`): end quietly, as `cat`
        # does. Point stdout at /dev/null so that the interpreter's own flush at exit does
        # not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command ended by it


if __name__ == "__main__":
    sys.exit(main())
