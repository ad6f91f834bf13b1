"""Keys and phones: the admin API over API keys, pairing a leader's phone, and `/v1/me`.

`POST /v1/leaders/{id}/pairings` (admin) makes a one-time code for a leader's phone; the
phone redeems it at `POST /v1/pairings/redeem` (public, limited against guessing) for a
`devices:write` key of its own, bound to that leader. Revoking a key (`DELETE
/v1/admin/keys/{id}`, or `dispatcher keys revoke`) shuts its phones out from the next
request. Keys and codes are never logged, and listings never show a key or its hash.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

import segno
from aiohttp import web
from pydantic import Field, StringConstraints

from dispatcher.guessing import FailureLimiter, Network, client_address
from dispatcher.intake import FieldError, Text, Wire, is_ident
from dispatcher.pairing import digest, new_code, normal
from dispatcher.pairing import shown as shown_code
from dispatcher.rules.load import RuleSet
from dispatcher.settings import ApiKey, Scope
from dispatcher.store.access import KeyRow
from dispatcher.web.auth import (
    CONFIG_PREFIX,
    KEY,
    PUBLIC,
    KeyRing,
    hash_key,
    key_id,
    new_key,
    requires,
    stored_id,
)
from dispatcher.web.openapi import documented
from dispatcher.web.problems import ProblemError
from dispatcher.web.services import CLOCK, KEYS, RULES, device_leader, json_response, read_body

log = logging.getLogger("dispatcher.access")

PAIRING_MINUTES = 15
MAX_PAIRING_MINUTES = 24 * 60


@dataclass
class Access:
    """What these handlers share: the key ring, the guessing limiter, where phones reach us."""

    ring: KeyRing
    public_url: str  # no trailing slash; set to the real port once listening
    trusted_proxies: tuple[Network, ...] = ()
    limiter: FailureLimiter = field(default_factory=FailureLimiter)
    config_last_used: dict[str, datetime] = field(default_factory=dict)

    def app_url(self, code: str) -> str:
        return f"{self.public_url}/app/#pair={code}"


ACCESS = web.AppKey("access", Access)

Name = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class KeyIn(Wire):
    name: Name
    scopes: list[Scope] = Field(min_length=1, max_length=10)
    leader: Annotated[Text, Field(max_length=200)] | None = None


class PairingIn(Wire):
    minutes: int = Field(PAIRING_MINUTES, ge=1, le=MAX_PAIRING_MINUTES)


class RedeemIn(Wire):
    code: Annotated[Text, Field(min_length=1, max_length=40)]
    name: Name | None = None


def leader_json(rules: RuleSet, leader_id: str) -> dict[str, Any]:
    leader = rules.leaders[leader_id]
    team = rules.teams.get(leader.team)
    return {
        "id": leader.id,
        "name": leader.name,
        "locale": leader.locale,
        "team": leader.team,
        "team_name": team.name if team is not None else None,
    }


def _when(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def key_json(row: KeyRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "scopes": list(row.scopes),
        "leader": row.leader_id,
        "source": "database",
        "created_at": row.created_at.isoformat(),
        "created_by": row.created_by,
        "last_used_at": _when(row.last_used_at),
        "revoked_at": _when(row.revoked_at),
        "revoked_by": row.revoked_by,
    }


def config_key_json(key: ApiKey, last_used: datetime | None) -> dict[str, Any]:
    return {
        "id": key_id(key),
        "name": key.name,
        "scopes": list(key.scopes),
        "leader": key.leader,
        "source": "config",
        "created_at": None,
        "created_by": "config",
        "last_used_at": _when(last_used),  # by this instance, since it started
        "revoked_at": None,
        "revoked_by": None,
    }


def check_leader(rules: RuleSet, scopes: Sequence[str], leader: str | None) -> None:
    """422 unless a key's leader binding is right."""
    if "devices:write" in scopes and leader is None:
        raise ProblemError(
            422, "Invalid key", "a devices:write key is bound to a leader",
            errors=[FieldError("leader", "required with the scope devices:write")],
        )  # fmt: skip
    if leader is not None and leader not in rules.leaders:
        raise ProblemError(
            422, "Invalid key", errors=[FieldError("leader", f"no leader {leader!r} in the rules")]
        )


@requires("admin")
@documented(
    "API keys: the config's and the database's, never a key or its hash",
    responses={200: "the keys"},
    tags=["keys"],
)
async def list_keys(request: web.Request) -> web.Response:
    access = request.app[ACCESS]
    rows = await request.app[KEYS].list_keys()
    keys = [
        config_key_json(k, access.config_last_used.get(key_id(k))) for k in access.ring.config_keys
    ]
    return json_response({"keys": keys + [key_json(r) for r in rows]})


@requires("admin")
@documented(
    "Make an API key (shown once in the answer)",
    body=KeyIn,
    responses={201: "the key, with the key itself"},
    tags=["keys"],
)
async def create_key(request: web.Request) -> web.Response:
    body = await read_body(request, KeyIn, what="key")
    scopes = list(dict.fromkeys(body.scopes))
    check_leader(request.app[RULES].current, scopes, body.leader)
    admin: ApiKey = request[KEY]
    key = new_key()
    row = await request.app[KEYS].add_key(
        name=body.name, sha256=hash_key(key), scopes=scopes, leader_id=body.leader,
        now=request.app[CLOCK](), created_by=f"API by key '{admin.name}'",
    )  # fmt: skip
    log.info("key %s (%s) made by key '%s'", row.id, row.name, admin.name)
    return json_response({**key_json(row), "key": key}, status=201)


@requires("admin")
@documented(
    "Revoke an API key: refused from the next request, its phones disabled",
    responses={200: "the key, revoked", 404: "no such key", 409: "a key in the config file"},
    tags=["keys"],
)
async def revoke_key(request: web.Request) -> web.Response:
    access = request.app[ACCESS]
    wanted = request.match_info["id"]
    if not is_ident(wanted):
        raise ProblemError(404, "Not Found", "no key with that id")
    if wanted.startswith(CONFIG_PREFIX):
        raise ProblemError(
            409, "Key in the config",
            f"the key '{wanted.removeprefix(CONFIG_PREFIX)}' is in the config file (auth.keys): "
            "remove it there and restart the service",
        )  # fmt: skip
    admin: ApiKey = request[KEY]
    revoked = await request.app[KEYS].revoke_key(
        wanted, now=request.app[CLOCK](), by=f"API by key '{admin.name}'"
    )
    if revoked is None:
        raise ProblemError(404, "Not Found", f"no key with id {wanted!r}")
    access.ring.forget()
    log.info(
        "key %s (%s) revoked by key '%s': %d phone(s) disabled, %d push(es) stopped",
        revoked.key.id, revoked.key.name, admin.name, revoked.phones, revoked.pushes,
    )  # fmt: skip
    return json_response(
        {
            **key_json(revoked.key),
            "phones_disabled": revoked.phones,
            "pushes_stopped": revoked.pushes,
        }
    )


def qr_svg(url: str) -> str:
    return str(segno.make(url, error="m").svg_inline(scale=4))


@requires("admin")
@documented(
    "A one-time code for a leader's phone, with the app's URL and a QR code",
    body=PairingIn,
    body_required=False,
    responses={201: "the code", 404: "no such leader in the rules"},
    tags=["keys"],
)
async def create_pairing(request: web.Request) -> web.Response:
    access = request.app[ACCESS]
    leader = request.match_info["id"]
    rules = request.app[RULES].current
    if leader not in rules.leaders:
        raise ProblemError(404, "Not Found", f"no leader {leader!r} in the rules")
    body = PairingIn()
    if request.can_read_body:
        body = await read_body(request, PairingIn, what="pairing")
    admin: ApiKey = request[KEY]
    now = request.app[CLOCK]()
    code = new_code()
    pairing = await request.app[KEYS].add_pairing(
        sha256=digest(code), leader_id=leader, now=now,
        expires_at=now + timedelta(minutes=body.minutes), created_by=f"API by key '{admin.name}'",
    )  # fmt: skip
    log.info("pairing %s for leader %s made by key '%s'", pairing.id, leader, admin.name)
    url = access.app_url(code)
    return json_response(
        {
            "id": pairing.id,
            "code": shown_code(code),
            "leader": leader_json(rules, leader),
            "expires_at": pairing.expires_at.isoformat(),
            "url": url,
            "qr_svg": qr_svg(url),
        },
        status=201,
    )


@requires(PUBLIC)
@documented(
    "A phone trades a pairing code for a key of its own",
    body=RedeemIn,
    responses={
        201: "the phone's key",
        404: "no such code, or used, or expired",
        409: "the leader is no longer in the rules",
        429: "too many wrong codes; see Retry-After",
    },
    tags=["keys"],
)
async def redeem_pairing(request: web.Request) -> web.Response:
    """A phone trades a pairing code for its own key. Failures are limited per client
    address and in all (429 with Retry-After), so codes cannot be guessed."""
    access = request.app[ACCESS]
    now = request.app[CLOCK]()
    client = client_address(
        request.remote, request.headers.getall("X-Forwarded-For", []), access.trusted_proxies
    )
    wait = access.limiter.retry_after(client, now)
    if wait is not None:
        raise ProblemError(
            429, "Too Many Requests",
            f"too many wrong codes; try again in {math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )  # fmt: skip
    body = await read_body(request, RedeemIn, what="pairing code")
    code = normal(body.code)
    redeemed = None
    key = new_key()
    if code is not None:
        redeemed = await request.app[KEYS].redeem_pairing(
            sha256=digest(code), now=now, key_sha256=hash_key(key), name=body.name
        )
    if redeemed is None:
        access.limiter.failed(client, now)
        log.warning("a wrong, used or expired pairing code from %s", client)
        raise ProblemError(
            404, "Not Found",
            "no such pairing code, or it was used or has expired: ask for a new one",
        )  # fmt: skip
    pairing, row = redeemed
    rules = request.app[RULES].current
    if row.leader_id not in rules.leaders:
        raise ProblemError(409, "Conflict", f"leader {row.leader_id!r} is no longer in the rules")
    log.info("pairing %s redeemed: key %s for leader %s", pairing.id, row.id, row.leader_id)
    return json_response(
        {"key": key, "key_id": row.id, "leader": leader_json(rules, row.leader_id)}, status=201
    )


@requires("devices:write")
@documented("Who this phone's key speaks for", responses={200: "the leader"}, tags=["devices"])
async def me(request: web.Request) -> web.Response:
    """Who this phone's key speaks for."""
    leader = device_leader(request)
    key: ApiKey = request[KEY]
    rules = request.app[RULES].current
    return json_response(
        {"leader": leader_json(rules, leader), "key_id": stored_id(key), "key_name": key.name}
    )


async def record_uses(app: web.Application) -> None:
    """Write when keys were last used: the ids noted since the last call, stamped now."""
    access = app[ACCESS]
    used = access.ring.take_used()
    if not used:
        return
    now = app[CLOCK]()
    stored = {}
    for kid in used:
        if kid.startswith(CONFIG_PREFIX):
            access.config_last_used[kid] = now
        else:
            stored[kid] = now
    await app[KEYS].touch_keys(stored)


def add_access_routes(app: web.Application) -> None:
    app.router.add_get("/v1/admin/keys", list_keys)
    app.router.add_post("/v1/admin/keys", create_key)
    app.router.add_delete("/v1/admin/keys/{id}", revoke_key)
    app.router.add_post("/v1/leaders/{id}/pairings", create_pairing)
    app.router.add_post("/v1/pairings/redeem", redeem_pairing)
    app.router.add_get("/v1/me", me)
