"""How FCM's answers map to what delivery does, and how a fan-out's bodies are built."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dispatcher.notify.base import Push, retry_after_seconds
from dispatcher.notify.fcm import FCM_ERROR, Encoder, encode, result_for


def answer(http: int, code: str | None = None, status: str | None = None) -> bytes:
    """FCM's error answer: a google.rpc.Status, with an FcmError detail if `code`."""
    error: dict[str, object] = {"code": http, "message": "m"}
    if status:
        error["status"] = status
    if code:
        error["details"] = [{"@type": FCM_ERROR, "errorCode": code}]
    return json.dumps({"error": error}).encode()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, answer(404, "UNREGISTERED", status="NOT_FOUND"), ("UNREGISTERED", False, True)),
        (429, answer(429, "QUOTA_EXCEEDED"), ("QUOTA_EXCEEDED", True, False)),
        (503, answer(503, "UNAVAILABLE"), ("UNAVAILABLE", True, False)),
        (500, answer(500, "INTERNAL"), ("INTERNAL", True, False)),
        (403, answer(403, "SENDER_ID_MISMATCH"), ("SENDER_ID_MISMATCH", False, False)),
        (401, answer(401, "THIRD_PARTY_AUTH_ERROR"), ("THIRD_PARTY_AUTH_ERROR", False, False)),
        (401, answer(401, status="UNAUTHENTICATED"), ("UNAUTHENTICATED", True, False)),
        (403, answer(403, status="PERMISSION_DENIED"), ("PERMISSION_DENIED", False, False)),
        (502, b"<html>Bad Gateway</html>", ("HTTP_502", True, False)),
        (504, b"", ("DEADLINE_EXCEEDED", True, False)),
        (404, answer(404, status="NOT_FOUND"), ("NOT_FOUND", False, False)),
    ],
)
def test_each_fcm_error_has_its_fate(
    status: int, body: bytes, expected: tuple[str, bool, bool]
) -> None:
    r = result_for(1, status, body)
    assert not r.ok
    assert (r.error_code, r.retryable, r.disable_device) == expected


def test_invalid_argument_disables_the_device_only_when_it_is_about_the_token() -> None:
    about_token = json.dumps({"error": {"code": 400, "status": "INVALID_ARGUMENT",
        "message": "The registration token is not a valid FCM registration token",
        "details": [{"@type": FCM_ERROR, "errorCode": "INVALID_ARGUMENT"}]}}).encode()  # fmt: skip
    about_message = answer(400, "INVALID_ARGUMENT", status="INVALID_ARGUMENT")
    assert result_for(1, 400, about_token).disable_device
    ours = result_for(1, 400, about_message)
    assert (ours.disable_device, ours.retryable) == (False, False)
    assert "our bug" in ours.detail


def test_a_sent_message_keeps_fcm_s_name_and_retry_after_is_passed_on() -> None:
    ok = result_for(3, 200, b'{"name": "projects/p/messages/0:1"}')
    assert (ok.ok, ok.ref, ok.message_name) == (True, 3, "projects/p/messages/0:1")
    busy = result_for(4, 429, answer(429, "QUOTA_EXCEEDED"), retry_after=30)
    assert busy.retry_after == 30


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Wed, 02 Dec 2026 08:01:30 GMT", now=now) == 90
    assert retry_after_seconds("Wed, 02 Dec 2026 07:00:00 GMT", now=now) == 0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_a_fan_out_s_bodies_are_firebase_admin_s_encoding_with_each_token() -> None:
    encoder = Encoder()
    base = Push(ref=1, token="t", platform="android", title="إدلب · 3", body='"quoted"',
                collapse_key="g1", data={"group_id": "g1", "seq": "2"}, priority="high",
                ttl=timedelta(minutes=5))  # fmt: skip
    for token in ("abc:APA91b" + "x" * 140, 'odd"token\\', "t2"):
        push = Push(**{**_fields(base), "token": token})
        assert _settled(encoder(push)) == _settled(encode(push))
    other = Push(**{**_fields(base), "data": {"seq": "3"}})
    assert json.loads(encoder(other))["message"]["data"] == {"seq": "3"}
    with pytest.raises(ValueError, match="string"):
        encoder(Push(**{**_fields(base), "data": {"seq": 3}}))
    with pytest.raises(ValueError, match="token"):
        encoder(Push(**{**_fields(base), "token": ""}))


def _settled(body: bytes) -> dict[str, object]:
    """A message without apns-expiration, an absolute time taken when it was built."""
    message = json.loads(body)
    expiration = message["message"]["apns"]["headers"].pop("apns-expiration")
    assert int(expiration) > 0
    return dict(message)


def _fields(push: Push) -> dict[str, Any]:
    return {name: getattr(push, name) for name in Push.__slots__}
