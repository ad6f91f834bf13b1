"""The FCM sender's HTTP/1.1 client against real servers on real ports: framing, reuse,
closed and stale connections, garbage and silence."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dispatcher.notify import http1
from dispatcher.notify.http1 import Origin
from tests.support.waiting import until

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(handler: Handler, **runner: float) -> AsyncIterator[tuple[str, list[int]]]:
    """An aiohttp server answering POST /x with `handler`; its URL and the client port of
    each request (one port per connection)."""
    ports: list[int] = []

    async def record(request: web.Request) -> web.StreamResponse:
        ports.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        return await handler(request)

    app = web.Application()
    app.router.add_post("/x", record)
    run = web.AppRunner(app, access_log=None, **runner)  # type: ignore[arg-type]
    await run.setup()
    site = web.TCPSite(run, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{run.addresses[0][1]}", ports
    finally:
        await run.cleanup()


async def echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read(), headers={"Retry-After": "7"})


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[str, list[int]]]:
    async for server in serve(echo):
        yield server


async def test_requests_share_one_kept_alive_connection(
    echo_server: tuple[str, list[int]],
) -> None:
    url, ports = echo_server
    origin = Origin(url, timeout=5)
    head = origin.head("/x", {"Content-Type": "application/json"})
    answers = [await origin.post(head, f'{{"n": {i}}}'.encode()) for i in range(5)]
    origin.close()
    assert [a.body for a in answers] == [f'{{"n": {i}}}'.encode() for i in range(5)]
    assert {a.status for a in answers} == {200}
    assert answers[0].retry_after == "7"
    assert len(set(ports)) == 1


async def test_a_chunked_answer_is_read_whole() -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=503)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b'{"error": ')
        await resp.write(b'"busy"}')
        await resp.write_eof()
        return resp

    async for url, _ in serve(chunked):
        origin = Origin(url, timeout=5)
        answer = await origin.post(origin.head("/x", {}), b"{}")
        again = await origin.post(origin.head("/x", {}), b"{}")
        origin.close()
        assert (answer.status, answer.body) == (503, b'{"error": "busy"}')
        assert again == answer


async def test_connection_close_is_honoured() -> None:
    async def closing(request: web.Request) -> web.Response:
        resp = web.Response(text="ok")
        resp.force_close()
        return resp

    async for url, ports in serve(closing):
        origin = Origin(url, timeout=5)
        for _ in range(3):
            assert (await origin.post(origin.head("/x", {}), b"{}")).status == 200
        origin.close()
        assert len(set(ports)) == 3


async def test_a_connection_the_server_dropped_while_idle_is_replaced() -> None:
    served: list[asyncio.BaseTransport] = []

    async def echo_noting(request: web.Request) -> web.Response:
        assert request.transport is not None
        served.append(request.transport)
        return await echo(request)

    async for url, ports in serve(echo_noting, keepalive_timeout=0.1):
        origin = Origin(url, timeout=5)
        assert (await origin.post(origin.head("/x", {}), b"1")).body == b"1"
        await until(served[0].is_closing, what="the server closing the idle connection")
        assert (await origin.post(origin.head("/x", {}), b"2")).body == b"2"
        origin.close()
        assert len(set(ports)) == 2


async def test_an_old_idle_connection_is_not_reused(
    echo_server: tuple[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ports = echo_server
    origin = Origin(url, timeout=5)
    await origin.post(origin.head("/x", {}), b"1")
    monkeypatch.setattr(http1, "KEEPALIVE", 0.0)  # every idle connection is now too old
    await origin.post(origin.head("/x", {}), b"2")
    origin.close()
    assert len(set(ports)) == 2


async def raw_server(answer: bytes | None) -> tuple[asyncio.Server, str]:
    """A TCP server that reads a request and writes `answer` (or nothing, ever)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if answer is None:
            await asyncio.sleep(30)
        writer.write(answer or b"")
        await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def test_garbage_and_silence_fail_the_request_not_the_caller() -> None:
    garbage, garbage_url = await raw_server(b"SMTP ready\r\n\r\n")
    silent, silent_url = await raw_server(None)
    try:
        origin = Origin(garbage_url, timeout=5)
        with pytest.raises(ConnectionError, match="malformed"):
            await origin.post(origin.head("/x", {}), b"{}")
        quiet = Origin(silent_url, timeout=0.2)
        with pytest.raises(TimeoutError):
            await quiet.post(quiet.head("/x", {}), b"{}")
        nobody = Origin("http://127.0.0.1:9", timeout=5)
        with pytest.raises(ConnectionError, match="cannot connect"):
            await nobody.post(nobody.head("/x", {}), b"{}")
    finally:
        for server in (garbage, silent):
            server.close()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_https_checks_the_server_s_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_post("/relay/x", echo)
    run = web.AppRunner(app, access_log=None)
    await run.setup()
    await web.TCPSite(run, "127.0.0.1", 0, ssl_context=server_tls).start()
    url = f"https://127.0.0.1:{run.addresses[0][1]}"
    try:
        trusting = Origin(url, timeout=5, tls=ssl.create_default_context(cafile=str(cert)))
        answer = await trusting.post(trusting.head("/relay/x", {}), b"over tls")
        assert (answer.status, answer.body) == (200, b"over tls")
        trusting.close()
        default = Origin(url, timeout=5)  # the system's CAs do not know this certificate
        with pytest.raises(ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await default.post(default.head("/relay/x", {}), b"{}")
    finally:
        await run.cleanup()
