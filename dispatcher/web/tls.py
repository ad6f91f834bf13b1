"""HTTPS served by the service itself, from `server.tls.cert` and `server.tls.key`.

Browsers install the leaders' app and allow push only in a secure context. A reverse proxy
with its own certificates (Caddy, nginx) does as well; this is for a server without one.
The certificate is read again into the same context on SIGHUP: new connections get the new
one, connections already open keep theirs.
"""

from __future__ import annotations

import asyncio
import ssl

from dispatcher.settings import ConfigError, TlsSettings


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    """A server context with sane defaults (TLS 1.2 or newer, the system's ciphers), or
    ConfigError naming the file that cannot be used."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load(context, tls)
    return context


def load(context: ssl.SSLContext, tls: TlsSettings) -> None:
    try:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            [f"server.tls: cannot use the certificate {tls.cert} with the key {tls.key}: {exc}"]
        ) from exc


async def reload(context: ssl.SSLContext, tls: TlsSettings) -> None:
    """Read the certificate and key again into `context` (off the event loop); on an error
    the old ones keep serving and ConfigError says why."""
    await asyncio.to_thread(load, context, tls)
