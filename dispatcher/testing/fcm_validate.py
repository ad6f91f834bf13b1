"""What the FCM HTTP v1 API accepts, checked as the real service checks it. Pure.

Used by the emulator: a message the real service would refuse is refused here too, with the
same status and error shape, so tests cannot pass on a payload Google would reject.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_PAYLOAD = 4096
TTL = re.compile(r"^\d+(\.\d{1,9})?s$")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{10,}:[A-Za-z0-9_-]{40,}$")
RESERVED_DATA = ("from", "message_type")
RESERVED_PREFIXES = ("google.", "gcm.")

BODY_KEYS = ("message", "validate_only")
MESSAGE_KEYS = (
    "name", "data", "notification", "android", "webpush", "apns", "fcm_options",
    "token", "topic", "condition",
)  # fmt: skip
NOTIFICATION_KEYS = ("title", "body", "image")
ANDROID_KEYS = (
    "collapse_key", "priority", "ttl", "restricted_package_name", "data", "notification",
    "fcm_options", "direct_boot_ok", "bandwidth_constrained_ok", "restricted_satellite_ok",
)  # fmt: skip
ANDROID_NOTIFICATION_KEYS = (
    "title", "body", "icon", "color", "sound", "tag", "click_action", "body_loc_key",
    "body_loc_args", "title_loc_key", "title_loc_args", "channel_id", "ticker", "sticky",
    "event_time", "local_only", "notification_priority", "default_sound",
    "default_vibrate_timings", "default_light_settings", "vibrate_timings", "visibility",
    "notification_count", "light_settings", "image", "bypass_proxy_notification", "proxy",
)  # fmt: skip
APNS_KEYS = ("headers", "payload", "fcm_options", "live_activity_token")
WEBPUSH_KEYS = ("headers", "data", "notification", "fcm_options")
FCM_OPTIONS_KEYS = ("analytics_label", "image")


@dataclass(frozen=True, slots=True)
class Violation:
    field: str
    description: str


class Invalid(Exception):
    def __init__(self, message: str, violations: list[Violation]) -> None:
        super().__init__(message)
        self.message = message
        self.violations = violations


def _unknown(obj: dict[str, Any], allowed: tuple[str, ...], where: str) -> list[Violation]:
    return [
        Violation(
            where,
            f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': "
            "Cannot find field.",
        )
        for key in obj
        if key not in allowed
    ]


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(
            f"Invalid value at '{where}'",
            [Violation(where, f"Invalid value at '{where}': expected an object")],
        )
    return value


def _string_map(value: Any, where: str) -> list[Violation]:
    if not isinstance(value, dict):
        return [Violation(where, f"Invalid value at '{where}': expected a map")]
    out = []
    for i, (k, v) in enumerate(value.items()):
        if not isinstance(v, str):
            out.append(
                Violation(
                    f"{where}[{i}].value",
                    f"Invalid value at '{where}[{i}].value' ({type(v).__name__}), "
                    f'expected a string for key "{k}"',
                )
            )
    return out


def validate_send(body: Any) -> dict[str, Any]:
    """Return the message of a valid messages:send body, or raise Invalid."""
    body = _object(body, "")
    violations = _unknown(body, BODY_KEYS, "")
    if "message" not in body:
        violations.append(Violation("message", "Message must be set"))
        raise Invalid("Request contains an invalid argument.", violations)
    if "validate_only" in body and not isinstance(body["validate_only"], bool):
        violations.append(Violation("validate_only", "expected a boolean"))
    msg = _object(body["message"], "message")
    violations += _unknown(msg, MESSAGE_KEYS, "message")
    targets = [k for k in ("token", "topic", "condition") if k in msg]
    if len(targets) != 1:
        violations.append(
            Violation("message", "Exactly one of token, topic or condition must be specified")
        )
    if "data" in msg:
        violations += _string_map(msg["data"], "message.data")
        if isinstance(msg["data"], dict):
            for key in msg["data"]:
                if key in RESERVED_DATA or key.startswith(RESERVED_PREFIXES):
                    violations.append(Violation("message.data", f"Invalid data payload key: {key}"))
    if "notification" in msg:
        note = _object(msg["notification"], "message.notification")
        violations += _unknown(note, NOTIFICATION_KEYS, "message.notification")
        for key in ("title", "body", "image"):
            if key in note and not isinstance(note[key], str):
                violations.append(Violation(f"message.notification.{key}", "expected a string"))
    if "android" in msg:
        violations += _android(_object(msg["android"], "message.android"))
    if "apns" in msg:
        violations += _apns(_object(msg["apns"], "message.apns"))
    if "webpush" in msg:
        violations += _unknown(_object(msg["webpush"], "message.webpush"), WEBPUSH_KEYS,
                               "message.webpush")  # fmt: skip
    if "fcm_options" in msg:
        violations += _unknown(_object(msg["fcm_options"], "message.fcm_options"),
                               FCM_OPTIONS_KEYS, "message.fcm_options")  # fmt: skip
    if violations:
        raise Invalid("Request contains an invalid argument.", violations)
    if payload_size(msg) > MAX_PAYLOAD:
        raise Invalid(
            "Message is too big",
            [Violation("message", f"Message is too big: over {MAX_PAYLOAD} bytes of payload")],
        )
    return msg


def _android(android: dict[str, Any]) -> list[Violation]:
    out = _unknown(android, ANDROID_KEYS, "message.android")
    priority = android.get("priority")
    if priority is not None and str(priority).upper() not in ("NORMAL", "HIGH"):
        out.append(
            Violation(
                "message.android.priority",
                f"Invalid value at 'message.android.priority' (type.googleapis.com/"
                f'google.firebase.fcm.v1.AndroidMessagePriority), "{priority}"',
            )
        )
    ttl = android.get("ttl")
    if ttl is not None:
        if not isinstance(ttl, str) or not TTL.match(ttl):
            out.append(
                Violation(
                    "message.android.ttl",
                    "Invalid value at 'message.android.ttl' "
                    f'(type.googleapis.com/google.protobuf.Duration), "{ttl}"',
                )
            )
        elif float(ttl[:-1]) > 2419200:
            out.append(Violation("message.android.ttl", "TTL must be at most 4 weeks"))
    if "collapse_key" in android and not isinstance(android["collapse_key"], str):
        out.append(Violation("message.android.collapse_key", "expected a string"))
    if "data" in android:
        out += _string_map(android["data"], "message.android.data")
    if "notification" in android:
        note = _object(android["notification"], "message.android.notification")
        out += _unknown(note, ANDROID_NOTIFICATION_KEYS, "message.android.notification")
    return out


def _apns(apns: dict[str, Any]) -> list[Violation]:
    out = _unknown(apns, APNS_KEYS, "message.apns")
    headers = apns.get("headers", {})
    out += _string_map(headers, "message.apns.headers")
    if isinstance(headers, dict):
        prio = headers.get("apns-priority")
        if prio is not None and prio not in ("1", "5", "10"):
            out.append(Violation("message.apns.headers", f"Invalid apns-priority: {prio}"))
        collapse = headers.get("apns-collapse-id")
        if isinstance(collapse, str) and len(collapse.encode()) > 64:
            out.append(Violation("message.apns.headers", "apns-collapse-id over 64 bytes"))
    if "payload" in apns and not isinstance(apns["payload"], dict):
        out.append(Violation("message.apns.payload", "expected an object"))
    return out


def payload_size(msg: dict[str, Any]) -> int:
    """Bytes of user payload, as FCM counts them against its 4 KB limit: data keys and
    values, and the notification texts."""
    size = 0
    for k, v in (msg.get("data") or {}).items():
        size += len(str(k).encode()) + len(str(v).encode())
    note = msg.get("notification") or {}
    for key in ("title", "body"):
        size += len(str(note.get(key, "")).encode())
    return size
