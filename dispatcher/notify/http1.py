"""A lean keep-alive HTTP/1.1 client for one origin: the FCM sender's transport.

FCM v1 takes one message per request, so a fan-out is the same small POST thousands of
times. aiohttp's client spends most of a big fan-out's CPU in its general machinery
(cookies, redirects, tracing, header merging; figures in docs/performance.md).
Here a connection is an asyncio.Protocol that writes a request head built once per batch
plus the body, and httptools (llhttp, the parser uvicorn uses) frames the answer:
Content-Length or chunked, keep-alive or close, for a fraction of the CPU per push.

Deliberately small: POST only, one request at a time per connection (no pipelining), no
redirects, no compression, no proxies. Connections idle for more than KEEPALIVE seconds are
not reused (servers and NATs drop them silently, and a request on one would wait for its
timeout); a reused connection that turns out closed is replaced once, at once. Anything
else unusual (a connection closed under a request, an answer that does not parse, a
timeout) fails that one request with ConnectionError or TimeoutError, and the connection is
dropped; the outbox retries the push.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

KEEPALIVE = 15.0  # seconds an idle connection is kept for reuse (aiohttp's default too)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    retry_after: str | None = None
    location: str | None = None  # a Web Push service names the message it took


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.gone = False
        self.idle_since = 0.0
        self._body: list[bytes] = []
        self._retry_after: str | None = None
        self._location: str | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed HTTP answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        self._fail(ConnectionError(f"connection closed: {exc or 'by the server'}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"retry-after":
            self._retry_after = value.decode("latin-1")
        elif lower == b"location":
            self._location = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        answer = Answer(self.parser.get_status_code(), b"".join(self._body), self._retry_after,
                        self._location)  # fmt: skip
        self._body, self._retry_after, self._location = [], None, None
        if not self.parser.should_keep_alive():
            self.close()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    # ours
    async def exchange(self, request: bytes) -> Answer:
        if self.gone or self.transport is None or self.transport.is_closing():
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def _fail(self, exc: Exception) -> None:
        self.close()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.gone = True
        if self.transport is not None:
            self.transport.close()


class Origin:
    """Keep-alive connections to one scheme://host:port, opened as needed and reused."""

    def __init__(self, url: str, *, timeout: float, tls: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.authority = parts.netloc.rsplit("@", 1)[-1]
        self.timeout = timeout
        self._tls = None
        if parts.scheme == "https":
            self._tls = tls or ssl.create_default_context()
        self._idle: list[_Connection] = []

    def head(self, path: str, headers: dict[str, str]) -> bytes:
        """The request head up to the body's length, built once for many requests."""
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")

    async def post(self, head: bytes, body: bytes) -> Answer:
        """One request on an idle connection (or a new one); raises ConnectionError or
        TimeoutError, after which that connection is not used again."""
        request = head + b"%d\r\n\r\n" % len(body) + body
        async with asyncio.timeout(self.timeout):
            conn = self._reusable()
            if conn is not None:
                try:
                    return self._keep(conn, await conn.exchange(request))
                except ConnectionError:
                    conn.close()  # closed while idle: the request goes on a new connection
                except BaseException:
                    conn.close()
                    raise
            conn = await self._connect()
            try:
                return self._keep(conn, await conn.exchange(request))
            except BaseException:
                conn.close()
                raise

    def _keep(self, conn: _Connection, answer: Answer) -> Answer:
        if not conn.gone:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        return answer

    def _reusable(self) -> _Connection | None:
        fresh_after = time.monotonic() - KEEPALIVE
        while self._idle:
            conn = self._idle.pop()
            if not conn.gone and conn.idle_since > fresh_after:
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                _Connection,
                self.host,
                self.port,
                ssl=self._tls,
                server_hostname=self.host if self._tls else None,
            )
        except OSError as exc:
            raise ConnectionError(f"cannot connect to {self.authority}: {exc}") from exc
        return conn

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
