"""HTTPS served by the service itself, from `server.tls.cert` and `server.tls.key`.

Browsers install the leaders' app and allow push only in a secure context. A reverse proxy
with its own certificates (Caddy, nginx) does as well; this is for a server without one.
The certificate is read again on SIGHUP: new connections get the new one, connections
already open keep theirs.
"""

from __future__ import annotations

import asyncio
import ssl

from dispatcher.settings import ConfigError, TlsSettings


def _context(tls: TlsSettings) -> ssl.SSLContext:
    """A server context with sane defaults (TLS 1.2 or newer, the system's ciphers), or
    ConfigError naming the file that cannot be used."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            [f"server.tls: cannot use the certificate {tls.cert} with the key {tls.key}: {exc}"]
        ) from exc
    return context


class ServerCertificate:
    """The context the listening socket is given, and the one each handshake is handed to.

    Loading a renewed certificate into the live context would let a handshake that falls
    between its certificate and its key see a pair that does not match (the client gets a
    reset), and a bad key would leave the new certificate half loaded. So a renewal is
    loaded whole into a new context and swapped in at once, from the hello callback that
    every handshake passes through.
    """

    def __init__(self, tls: TlsSettings) -> None:
        self.tls = tls
        self.current = _context(tls)
        self.listening = _context(tls)
        self.listening.sni_callback = self._hand_over

    def _hand_over(self, conn: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        conn.context = self.current

    async def reload(self) -> None:
        """Read the certificate and key again (off the event loop); on an error the old ones
        keep serving and ConfigError says why."""
        self.current = await asyncio.to_thread(_context, self.tls)
