"""The Web Push message: the JSON a service worker receives, encrypted for one browser, and
the headers it travels with (RFC 8030, 8291).

The payload fits in 4 KB (`payload` shortens data, body, then title); it is encrypted for
the subscription alone (aes128gcm by `http_ece`: an ECDH with a fresh key, HKDF and AES-GCM
per message). `TTL` comes from the route's ttl, `Urgency: high` for immediate routes, and
`Topic` is the alert group, so that a newer update replaces an undelivered older one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec

from dispatcher.notify.base import Push
from dispatcher.notify.webpush_keys import b64url, b64url_decode

MAX_BODY = 4096  # what every push service must take (RFC 8030 7.2); ours never exceed it
RECORD_SIZE = 4096
# aes128gcm's header (salt 16, record size 4, key id length 1, our public key 65), and per
# record a delimiter octet and the 16-octet AES-GCM tag: a payload of MAX_PLAIN octets
# makes a body of exactly MAX_BODY.
HEADER = 16 + 4 + 1 + 65
MAX_PLAIN = MAX_BODY - HEADER - 1 - 16
DEFAULT_TTL = 3600  # seconds, for a push with no expiry of its own
TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _fit(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _cut(message: dict[str, Any], name: str, limit: int) -> None:
    """Shorten `message[name]` (with an ellipsis) to the longest prefix that lets the
    message fit in `limit` octets, counted as JSON (escapes make some characters longer)."""
    text = message[name]
    lo, hi = 0, len(text)  # text[:lo] + "…" fits (or lo is 0); text[:hi + 1] does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        message[name] = text[:mid] + "…"
        if len(_fit(message)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    message[name] = text[:lo] + "…" if lo else ""


def payload(push: Push, *, limit: int = MAX_PLAIN) -> bytes:
    """The JSON the service worker receives (after decryption), at most `limit` octets.

    A full push: `{"group_id", "seq", "kind", "title", "body", "url", "data"}`; for a
    `payload: minimal` route only `{"group_id", "seq", "kind", "minimal": true}`, and the
    app fetches the update. Too long for a push, the data goes first, then the body is
    shortened, then the title: the alert always arrives, the app shows the rest."""
    data = dict(push.data)
    group_id = data.pop("group_id", push.collapse_key)
    seq_text = data.pop("seq", "0")
    seq: int | str = int(seq_text) if seq_text.isdigit() else seq_text
    kind = data.pop("kind", "update")
    if data.pop("minimal", None) == "true":
        return _fit({"group_id": group_id, "seq": seq, "kind": kind, "minimal": True})
    message: dict[str, Any] = {
        "group_id": group_id,
        "seq": seq,
        "kind": kind,
        "title": push.title,
        "body": push.body,
        "url": f"/app/#group={group_id}",
        "data": data,
    }
    body = _fit(message)
    if len(body) <= limit:
        return body
    message["data"] = {}
    for name in ("body", "title"):
        if len(_fit(message)) > limit:
            _cut(message, name, limit)
    body = _fit(message)
    if len(body) > limit:  # only a group id of absurd length gets here
        body = _fit({"group_id": group_id, "seq": seq, "kind": kind, "minimal": True})
    return body


def encrypt(plain: bytes, p256dh: str, auth: str) -> bytes:
    """`plain` encrypted for one subscription (RFC 8291, aes128gcm, one record)."""
    return bytes(
        http_ece.encrypt(
            plain,
            salt=os.urandom(16),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            dh=b64url_decode(p256dh),
            auth_secret=b64url_decode(auth),
            version="aes128gcm",
            rs=RECORD_SIZE,
        )
    )


def topic_of(collapse_key: str) -> str:
    """The `Topic` header: up to 32 characters of the URL-safe base64 alphabet. Group ids
    (32 hex) are used as they are; anything else by its digest."""
    if TOPIC.match(collapse_key):
        return collapse_key
    return b64url(hashlib.sha256(collapse_key.encode()).digest()[:24])


def headers_for(push: Push, authorization: str) -> dict[str, str]:
    ttl = DEFAULT_TTL if push.ttl is None else max(0, int(push.ttl.total_seconds()))
    return {
        "Authorization": authorization,
        "TTL": str(ttl),
        "Urgency": "high" if push.priority == "high" else "normal",
        "Topic": topic_of(push.collapse_key),
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
    }
