"""Web Push's keys: the service's VAPID identity (RFC 8292) and a subscription's keys.

The VAPID key pair is made once (`new_vapid_pem`) and kept in the database under
`VAPID_KEY_NAME` (`Store.keep_service_key`): subscriptions are bound to its public key, so
it is never replaced. `Vapid` signs the `Authorization` JWT once per push service and hour,
not per message, with py-vapid. A subscription's `p256dh` and `auth` are checked here when a
browser registers (`check_p256dh`, `check_auth`); notify/webpush_message.py encrypts for them.
"""

from __future__ import annotations

import base64
import re
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02, VapidException

VAPID_KEY_NAME = "vapid"
JWT_LIFETIME = timedelta(hours=12)  # a signed JWT's `exp`; push services refuse over 24 h
RESIGN_AFTER = timedelta(hours=1)  # a new JWT per push service this often


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Base64url with or without padding (browsers send it without); ValueError if not."""
    text = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9_\-]*={0,2}", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))


def check_p256dh(value: str) -> bytes:
    """A subscription's `keys.p256dh`: an uncompressed point on P-256, else ValueError."""
    raw = b64url_decode(value)
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError("must be an uncompressed P-256 public key (65 octets, base64url)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise ValueError("is not a point on the P-256 curve") from None
    return raw


def check_auth(value: str) -> bytes:
    """A subscription's `keys.auth`: 16 octets, else ValueError."""
    raw = b64url_decode(value)
    if len(raw) != 16:
        raise ValueError("must be the 16-octet authentication secret, base64url")
    return raw


def new_vapid_pem() -> str:
    """A new VAPID private key (P-256), PKCS#8 PEM as it is kept in the database."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class Vapid:
    """The service's VAPID identity: its public key for subscribers, and the
    `Authorization` header for each push service, signed once an hour and reused."""

    def __init__(self, private_pem: str, subject: str) -> None:
        key = serialization.load_pem_private_key(private_pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("the stored VAPID key is not a P-256 private key")
        self._signer = Vapid02(private_key=key)
        self.subject = subject
        self.public_key = b64url(
            key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )
        self._cache: dict[str, tuple[float, str]] = {}  # origin -> (signed at, header)
        self.signed = 0  # JWTs signed so far (once per push service and hour)

    def header(self, origin: str, now: float) -> str:
        """`vapid t=<JWT>, k=<public key>` for pushes to `origin` (RFC 8292), as of `now`
        (UNIX seconds). Raises ValueError for a subject push services would refuse."""
        cached = self._cache.get(origin)
        if cached is not None and now - cached[0] < RESIGN_AFTER.total_seconds():
            return cached[1]
        claims = {
            "aud": origin,
            "exp": int(now + JWT_LIFETIME.total_seconds()),
            "sub": self.subject,
        }
        try:
            signed = self._signer.sign(claims)["Authorization"]
        except VapidException as exc:
            raise ValueError(str(exc)) from exc
        token = signed.split("t=", 1)[1].split(",", 1)[0]
        value = f"vapid t={token}, k={self.public_key}"
        self._cache[origin] = (now, value)
        self.signed += 1
        return value
