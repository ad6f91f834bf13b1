"""How push services' answers map to what delivery does; which endpoints are accepted; what
a push carries and how it fits in 4 KB; how often VAPID claims are signed."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import jwt as vapid_jwt

from dispatcher.notify.base import Push, redact_token
from dispatcher.notify.webpush import (
    MAX_BODY,
    Vapid,
    b64url,
    b64url_decode,
    check_auth,
    check_p256dh,
    encrypt,
    headers_for,
    new_vapid_pem,
    payload,
    result_for,
    topic_of,
)
from dispatcher.notify.webpush_endpoints import check_origin, endpoint_problem

GROUP = "0f" * 16


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        # (error code, retryable, disable the subscription, a configuration error)
        (410, b'{"code":410,"errno":106,"message":"Request did not validate"}',
         ("GONE", False, True, False)),
        (404, b"", ("NOT_FOUND", False, True, False)),
        (429, b'{"reason":"TooManyRequests"}', ("TOO_MANY_REQUESTS", True, False, False)),
        (500, b"", ("HTTP_500", True, False, False)),
        (502, b"<html>Bad Gateway</html>", ("HTTP_502", True, False, False)),
        (503, b"", ("HTTP_503", True, False, False)),
        (408, b"", ("HTTP_408", True, False, False)),
        (413, b"", ("PAYLOAD_TOO_LARGE", False, False, True)),
        (400, b'{"reason":"BadPriority"}', ("HTTP_400", False, False, True)),
        (401, b"", ("UNAUTHORIZED", False, False, True)),
        (403, b'{"reason":"BadJwtToken"}', ("VAPID_REFUSED", False, False, True)),
        (415, b"", ("HTTP_415", False, False, True)),
    ],
)  # fmt: skip
def test_each_push_service_answer_has_its_fate(
    status: int, body: bytes, expected: tuple[str, bool, bool, bool]
) -> None:
    r = result_for(1, status, body)
    assert not r.ok
    config = r.detail.startswith("configuration error")
    assert (r.error_code, r.retryable, r.disable_device, config) == expected


def test_what_the_service_said_is_kept_and_retry_after_passed_on() -> None:
    assert result_for(1, 403, b'{"reason":"BadJwtToken"}').detail.endswith(": BadJwtToken")
    mozilla = b'{"code":410,"errno":106,"error":"Gone","message":"Request did not validate"}'
    assert result_for(1, 410, mozilla).detail.endswith(": Request did not validate")
    busy = result_for(2, 429, b"", retry_after=30)
    assert (busy.retryable, busy.retry_after) == (True, 30)
    ok = result_for(3, 201, b"", location="https://push.example/m/abc")
    assert (ok.ok, ok.ref, ok.message_name) == (True, 3, "https://push.example/m/abc")
    assert result_for(4, 202, b"").ok


@pytest.mark.parametrize(
    ("endpoint", "accepted"),
    [
        ("https://fcm.googleapis.com/fcm/send/dQw4:APA91bH", True),
        ("https://fcm.googleapis.com/wp/dQw4w9WgXcQ", True),
        ("https://updates.push.services.mozilla.com/wpush/v2/gAAAAA", True),
        ("https://web.push.apple.com/QGuQyavXutnMH", True),
        ("https://wns2-par02p.notify.windows.com/w/?token=BQYAAA", True),
        ("https://fcm.googleapis.com:443/fcm/send/x", True),
        ("http://fcm.googleapis.com/fcm/send/x", False),  # not https
        ("https://fcm.googleapis.com:8443/fcm/send/x", False),  # another port
        ("https://fcm.googleapis.com.evil.example/fcm/send/x", False),
        ("https://evil.example/#@fcm.googleapis.com/x", False),
        ("https://user@fcm.googleapis.com/fcm/send/x", False),
        ("https://push.apple.com/x", False),  # the bare domain is not a push host
        ("https://evilpush.apple.com/x", False),
        ("https://169.254.169.254/latest/meta-data", False),  # the cloud's metadata service
        ("http://127.0.0.1:8080/v1/admin/rules/reload", False),  # ourselves
        ("ftp://fcm.googleapis.com/x", False),
        ("not a url", False),
    ],
)
def test_only_known_push_services_are_accepted(endpoint: str, accepted: bool) -> None:
    assert (endpoint_problem(endpoint) is None) is accepted


def test_an_operator_adds_origins_and_loopback_may_be_http() -> None:
    allowed = frozenset({check_origin("https://Push.Example.org/"), check_origin(
        "http://127.0.0.1:9098")})  # fmt: skip
    assert allowed == {"https://push.example.org", "http://127.0.0.1:9098"}
    assert endpoint_problem("https://push.example.org/wpush/abc", allowed) is None
    assert endpoint_problem("http://127.0.0.1:9098/push/abc", allowed) is None
    assert endpoint_problem("http://127.0.0.1:9099/push/abc", allowed) is not None
    refused = endpoint_problem("https://push.example.net/abc", allowed)
    assert refused is not None
    assert "push.webpush.allowed_origins" in refused
    for bad in ("http://push.example.org", "https://push.example.org/path", "push.example.org",
                "https://u@push.example.org"):  # fmt: skip
        with pytest.raises(ValueError, match=r"origin|https"):
            check_origin(bad)


def test_an_endpoint_in_a_listing_keeps_only_its_push_service() -> None:
    endpoint = "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91bHsecretpart1234"
    shown = redact_token(endpoint)
    assert shown == "https://fcm.googleapis.com/…1234"
    assert "APA91b" not in shown


def _subscriber() -> tuple[ec.EllipticCurvePrivateKey, str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return key, b64url(public), b64url(os.urandom(16))


def _push(**more: object) -> Push:
    fields: dict[str, object] = {
        "ref": 1, "token": "https://fcm.googleapis.com/fcm/send/x", "platform": "web",
        "title": "Idleb · new incidents: 1", "body": "killed: 2 · injured: 7",
        "collapse_key": GROUP, "priority": "high", "ttl": timedelta(minutes=10),
        "data": {"group_id": GROUP, "seq": "3", "kind": "update", "incidents": "a" * 32,
                 "more_incidents": "0"},
    }  # fmt: skip
    fields.update(more)
    return Push(**fields)  # type: ignore[arg-type]


def test_a_push_carries_the_contract_s_payload_encrypted_for_its_browser_alone() -> None:
    key, p256dh, auth = _subscriber()
    plain = payload(_push())
    assert json.loads(plain) == {
        "group_id": GROUP, "seq": 3, "kind": "update", "title": "Idleb · new incidents: 1",
        "body": "killed: 2 · injured: 7", "url": f"/app/#group={GROUP}",
        "data": {"incidents": "a" * 32, "more_incidents": "0"},
    }  # fmt: skip
    body = encrypt(plain, p256dh, auth)
    assert body != encrypt(plain, p256dh, auth), "a fresh key and salt for every message"
    assert http_ece.decrypt(body, private_key=key, auth_secret=b64url_decode(auth),
                            version="aes128gcm") == plain  # fmt: skip
    other, _, _ = _subscriber()
    with pytest.raises(Exception):  # noqa: B017, PT011 - http_ece raises InvalidTag
        http_ece.decrypt(body, private_key=other, auth_secret=b64url_decode(auth),
                         version="aes128gcm")  # fmt: skip


def test_a_minimal_route_pushes_only_a_reference() -> None:
    data = {"group_id": GROUP, "seq": "2", "kind": "update", "minimal": "true"}
    plain = payload(_push(title="New alert", body="Open the app to read it.", data=data))
    assert json.loads(plain) == {"group_id": GROUP, "seq": 2, "kind": "update", "minimal": True}


@pytest.mark.parametrize(
    ("title", "body"),
    [
        ("Idleb", "ب" * 3000),  # Arabic: two octets a character
        ("T" * 5000, "B" * 5000),
        ("Idleb", '"\\' * 2000),  # JSON escapes make it longer on the wire
        ("Idleb", "\x01" * 1500),  # \u0001: six octets for one
    ],
)
def test_a_push_never_exceeds_4_kb_and_keeps_what_fits(title: str, body: str) -> None:
    _key, p256dh, auth = _subscriber()
    plain = payload(_push(title=title, body=body))
    sent = encrypt(plain, p256dh, auth)
    assert len(sent) <= MAX_BODY
    message = json.loads(plain)
    assert message["group_id"] == GROUP
    assert message["seq"] == 3
    assert message["title"]
    assert message["title"][:5] == title[:5]
    assert message["data"] == {}, "the data goes first"
    if len(title) < 100:
        assert message["title"] == title
        assert message["body"].endswith("…")


def test_headers_say_ttl_urgency_and_topic() -> None:
    head = headers_for(_push(ttl=timedelta(seconds=299.6)), "vapid t=x, k=y")
    assert head == {"Authorization": "vapid t=x, k=y", "TTL": "299", "Urgency": "high",
                    "Topic": GROUP, "Content-Encoding": "aes128gcm",
                    "Content-Type": "application/octet-stream"}  # fmt: skip
    normal = headers_for(_push(priority="normal", ttl=None, collapse_key="a:b/c"), "v")
    assert (normal["Urgency"], normal["TTL"]) == ("normal", "3600")
    assert len(normal["Topic"]) == 32
    assert topic_of("a:b/c") == normal["Topic"]
    assert normal["Topic"] != topic_of("a:b/d")


def test_a_vapid_jwt_is_signed_once_per_push_service_and_hour() -> None:
    vapid = Vapid(new_vapid_pem(), "mailto:ops@example.org")
    t0 = 1_800_000_000.0
    google = vapid.header("https://fcm.googleapis.com", t0)
    assert vapid.header("https://fcm.googleapis.com", t0 + 3599) == google
    mozilla = vapid.header("https://updates.push.services.mozilla.com", t0 + 10)
    assert vapid.signed == 2
    later = vapid.header("https://fcm.googleapis.com", t0 + 3600)
    assert later != google
    assert vapid.signed == 3
    token = google.split("t=", 1)[1].split(",", 1)[0]
    key = google.rsplit("k=", 1)[1]
    assert key == vapid.public_key
    claims = vapid_jwt.decode(token, key)
    assert claims == {"aud": "https://fcm.googleapis.com", "exp": int(t0) + 12 * 3600,
                      "sub": "mailto:ops@example.org"}  # fmt: skip
    assert "mozilla" in vapid_jwt.decode(mozilla.split("t=")[1].split(",")[0], key)["aud"]


def test_subscription_keys_are_checked() -> None:
    _, p256dh, auth = _subscriber()
    assert len(check_p256dh(p256dh)) == 65
    assert len(check_auth(auth)) == 16
    off_curve = b64url(b"\x04" + b"\x01" * 64)
    for bad in (off_curve, b64url(b"\x02" + b"\x01" * 32), "not base64!", auth):
        with pytest.raises(ValueError, match=r"P-256|base64"):
            check_p256dh(bad)
    for bad in (b64url(os.urandom(15)), p256dh, "***"):
        with pytest.raises(ValueError, match=r"16-octet|base64"):
            check_auth(bad)
