"""The desk's pages, rendered on the server (aiohttp-jinja2), and signing in and out.

`/desk/` is the map and the live feed, `/desk/groups` the open groups (and each one's
deliveries), `/desk/silences`, `/desk/rules` (and the diff of two versions). A key with
`read` sees everything; write controls are rendered only for `admin`, and the JSON calls
refuse a `read` session's writes anyway.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from dispatcher.guessing import client_address
from dispatcher.model import KINDS
from dispatcher.notify.base import redact_token
from dispatcher.settings import ApiKey
from dispatcher.web.access import ACCESS
from dispatcher.web.auth import KEY, PUBLIC, requires
from dispatcher.web.desk import i18n
from dispatcher.web.desk.api import open_group_rows
from dispatcher.web.desk.diff import rules_diff
from dispatcher.web.desk.sessions import COOKIE, SESSION, key_for_sign_in, same_origin
from dispatcher.web.desk.state import DESK
from dispatcher.web.problems import ProblemError
from dispatcher.web.rules import rules_status_json
from dispatcher.web.services import CLOCK, GROUPS, OUTBOX, RULE_SETS, RULES, SILENCES
from dispatcher.web.silences import silence_json

log = logging.getLogger("dispatcher.desk")

LANG_COOKIE = "desk_lang"
FEED_BACKLOG = 50


def locale_of(request: web.Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in i18n.LOCALES:
        return chosen
    accept = request.headers.get("Accept-Language", "")
    return "ar" if accept.strip().lower().startswith("ar") else "en"


def context(request: web.Request, page: str, **extra: Any) -> dict[str, Any]:
    locale = locale_of(request)
    rules = request.app[RULES].current
    key: ApiKey | None = request.get(KEY)
    session = request.get(SESSION)
    can_write = key is not None and "admin" in key.scopes

    def t(name: str) -> str:
        return i18n.text(locale, name)

    def region_name(rid: str) -> str:
        return rules.region_name(rid, locale)

    return {
        "page": page,
        "here": request.path_qs,
        "locale": locale,
        "dir": i18n.DIRECTION[locale],
        "t": t,
        "kind_name": lambda k: i18n.kind_name(locale, k),
        "region_name": region_name,
        "key_name": key.name if key else None,
        "can_write": can_write,
        "csrf": session.csrf if session is not None else "",
        "rules": rules,
        "kinds": KINDS,
        "regions": sorted(rules.regions, key=lambda r: (len(rules.region_path(r)), region_name(r))),
        "teams": sorted(rules.teams),
        **extra,
    }


def _strings(locale: str) -> str:
    words = {k: i18n.text(locale, k) for k in i18n.STRINGS["en"]}
    words.update({f"kind_{k}": i18n.kind_name(locale, k) for k in KINDS})
    return json.dumps(words, ensure_ascii=False).replace("</", "<\\/")


def _sign_in_page(
    request: web.Request,
    error: str,
    status: int,
    *,
    headers: dict[str, str] | None = None,
    **words: Any,
) -> web.Response:
    """The sign-in page again, saying why (an i18n string, formatted with `words`): a page
    for a person, so returned as HTML rather than raised as a problem document."""
    page = aiohttp_jinja2.render_template(
        "login.html", request, context(request, "login", error=error, words=words), status=status
    )
    page.headers.update(headers or {})
    return page


@requires(PUBLIC)
async def login_form(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template(
        "login.html", request, context(request, "login", error=None, words={})
    )


@requires(PUBLIC)
async def login(request: web.Request) -> web.Response:
    """A key typed in the form becomes a session cookie. After SIGN_IN_FAILURES wrong keys
    from one address within SIGN_IN_WINDOW (desk/state.py), that address is answered 429 with
    Retry-After, the key unread, until the oldest failure is that old; signing in clears
    its failures."""
    if not same_origin(request):
        raise ProblemError(403, "Forbidden", "sign in from the desk's own page")
    desk = request.app[DESK]
    now = request.app[CLOCK]()
    client = client_address(
        request.remote,
        request.headers.getall("X-Forwarded-For", []),
        request.app[ACCESS].trusted_proxies,
    )
    wait = desk.sign_ins.retry_after(client, now)
    if wait is not None:
        seconds = math.ceil(wait)
        wait_words = i18n.minutes(locale_of(request), math.ceil(seconds / 60))
        return _sign_in_page(request, "too_many_sign_ins", 429, wait=wait_words,
                             headers={"Retry-After": str(seconds)})  # fmt: skip
    form = await request.post()
    presented = form.get("key")
    key = await key_for_sign_in(desk.keys, presented) if isinstance(presented, str) else None
    if key is None:
        desk.sign_ins.failed(client, now)
        log.warning("a desk sign-in with a wrong key from %s", client)
        return _sign_in_page(request, "bad_key", 401)
    desk.sign_ins.succeeded(client)
    session = desk.sessions.open(key, now)
    response = web.HTTPSeeOther("/desk/")
    response.set_cookie(
        COOKIE,
        session.id,
        path="/desk/",
        httponly=True,
        samesite="Strict",
        # Over TLS, served directly or behind a proxy at an https public_url.
        secure=request.secure or request.app[ACCESS].public_url.startswith("https://"),
    )
    raise response


@requires("read")
async def logout(request: web.Request) -> web.Response:
    session = request.get(SESSION)
    if session is not None:
        request.app[DESK].sessions.close(session.id)
    response = web.json_response({"signed_out": True})
    response.del_cookie(COOKIE, path="/desk/")
    return response


@requires(PUBLIC)
async def language(request: web.Request) -> web.Response:
    """Switch the desk's language (a cookie) and go back."""
    chosen = i18n.choose(request.query.get("l"))
    back = request.query.get("next", "/desk/")
    if not back.startswith("/desk/") or back.startswith("//"):
        back = "/desk/"
    response = web.HTTPSeeOther(back)
    response.set_cookie(LANG_COOKIE, chosen, path="/desk/", samesite="Strict", max_age=31536000)
    raise response


@requires("read")
async def desk_page(request: web.Request) -> web.Response:
    locale = locale_of(request)
    return aiohttp_jinja2.render_template(
        "map.html",
        request,
        context(
            request,
            "map",
            strings=_strings(locale),
            # The feed opens with the last FEED_BACKLOG reports, then follows live.
            feed_id=max(0, request.app[DESK].hub.last_id - FEED_BACKLOG),
        ),
    )


@requires("read")
async def groups_page(request: web.Request) -> web.Response:
    rows = await open_group_rows(request)
    return aiohttp_jinja2.render_template(
        "groups.html", request, context(request, "groups", groups=rows)
    )


@requires("read")
async def group_page(request: web.Request) -> web.Response:
    group = await request.app[GROUPS].get_group(request.match_info["id"])
    if group is None:
        raise web.HTTPNotFound(text="no alert group with that id")
    rows = await request.app[OUTBOX].deliveries(group.id)
    acks = await request.app[GROUPS].acks(group.id)
    rules = request.app[RULES].current
    deliveries = [
        {
            "seq": d.seq,
            "leader": d.leader_id,
            "leader_name": rules.leaders[d.leader_id].name if d.leader_id in rules.leaders else "",
            "device": redact_token(d.token) if d.token else None,
            "platform": d.platform,
            "channel": d.channel,
            "status": d.status,
            "attempts": d.attempts,
            "why": d.last_error
            or {
                "superseded": "a newer update of the group came first",
                "expired": "past the route's ttl before it could be sent",
            }.get(d.status, ""),
            "created_at": d.created_at,
            "sent_at": d.sent_at,
        }
        for d in rows
    ]
    return aiohttp_jinja2.render_template(
        "group.html",
        request,
        context(
            request,
            "groups",
            group=group,
            labels=dict(group.labels),
            acks=acks,
            deliveries=deliveries,
            receiver_name=rules.receiver_name(group.receiver),
        ),
    )


@requires("read")
async def silences_page(request: web.Request) -> web.Response:
    now = request.app[CLOCK]()
    found = await request.app[SILENCES].current_silences(ending_after=now)
    rules = request.app[RULES].current
    return aiohttp_jinja2.render_template(
        "silences.html",
        request,
        context(
            request,
            "silences",
            silences=[silence_json(s, now) for s in found],
            routes=sorted(r.id for r in rules.routes),
            strings=_strings(locale_of(request)),
        ),
    )


@requires("read")
async def rules_page(request: web.Request) -> web.Response:
    status = rules_status_json(request.app[RULES])
    history = await request.app[RULE_SETS].rule_set_history(limit=50)
    return aiohttp_jinja2.render_template(
        "rules.html",
        request,
        context(request, "rules", status=status, history=history),
    )


@requires("read")
async def diff_page(request: web.Request) -> web.Response:
    old, new = request.query.get("old", ""), request.query.get("new", "")
    result = await rules_diff(request, old, new) if old and new else None
    return aiohttp_jinja2.render_template(
        "diff.html",
        request,
        context(request, "rules", old=old, new=new, result=result),
    )
