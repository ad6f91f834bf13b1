"""Which Web Push endpoints the service will post to (pure).

A subscription names the URL we post its pushes to; anyone with a devices key could hand
us any URL. So an endpoint must be on a push service we know (the browsers' own: Google's
for Chrome and its kin, Mozilla's, Apple's, Microsoft's) or on an origin an operator added
in `push.webpush.allowed_origins`, and it must be https, except on a configured loopback
origin (an emulator in tests and benches). Checked when a subscription is registered, and
again before each push, since the configuration may have changed since.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

# Push services of the browsers, by host: an exact name, or "*." and a domain for the
# services that shard their hosts (web.push.apple.com, wns2-par02p.notify.windows.com).
KNOWN_PUSH_SERVICES = (
    "fcm.googleapis.com",  # Chrome, Edge on Android, Samsung Internet, Opera, Brave
    "updates.push.services.mozilla.com",  # Firefox
    "*.push.apple.com",  # Safari (web.push.apple.com)
    "*.notify.windows.com",  # Edge on Windows (wns2-*.notify.windows.com)
)
MAX_ENDPOINT = 2048


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(scheme: str, host: str, port: int | None) -> str:
    default = {"https": 443, "http": 80}[scheme]
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if port in (None, default) else f"{scheme}://{shown}:{port}"


def check_origin(origin: str) -> str:
    """An operator's `allowed_origins` entry, normalised (`scheme://host[:port]`, lower
    case); ValueError saying what is wrong with it."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{origin!r} is not an origin; write it as https://host[:port]")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{origin!r} is not an origin; write it as https://host[:port]")
    if parts.path not in ("", "/"):
        raise ValueError(f"{origin!r} has a path; an origin is https://host[:port] only")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError(f"{origin!r}: push services are reached over https (http on loopback)")
    return _origin(parts.scheme, parts.hostname, parts.port)


def _known(host: str) -> bool:
    for pattern in KNOWN_PUSH_SERVICES:
        if pattern.startswith("*."):
            domain = pattern[1:]  # ".push.apple.com"
            if host.endswith(domain) and len(host) > len(domain):
                return True
        elif host == pattern:
            return True
    return False


def endpoint_origin(endpoint: str) -> str:
    """The origin of an endpoint (for the VAPID `aud`, and to pool connections)."""
    parts = urlsplit(endpoint)
    return _origin(parts.scheme, parts.hostname or "", parts.port)


def endpoint_problem(endpoint: str, allowed: frozenset[str] = frozenset()) -> str | None:
    """None if the service may post pushes to `endpoint`, else why not (for a 422 or a log
    line). `allowed` holds the extra origins, normalised by `check_origin`."""
    if len(endpoint) > MAX_ENDPOINT:
        return f"longer than {MAX_ENDPOINT} characters"
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError as exc:
        return f"not a URL: {exc}"
    host = parts.hostname
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https URL of a push service"
    if parts.username is not None or parts.password is not None or parts.fragment:
        return "must be a plain https URL of a push service (no user, no fragment)"
    if any(c.isspace() or ord(c) < 0x20 for c in endpoint):
        return "must not contain spaces or control characters"
    origin = _origin(parts.scheme, host, port)
    if origin in allowed:
        return None
    if parts.scheme == "https" and port in (None, 443) and _known(host):
        return None
    return (
        f"{origin} is not a push service this server sends to (known: "
        f"{', '.join(KNOWN_PUSH_SERVICES)}); an operator can add it to "
        "push.webpush.allowed_origins"
    )
