"""`dispatcher keys` and `dispatcher leaders pair` beside a running service, and HTTPS
served by the service with its certificate replaced on SIGHUP."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import re
import signal
import ssl
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dispatcher.pairing import ALPHABET
from tests.acceptance.test_cli import run
from tests.support.harness import TESTDATA
from tests.support.process import serve_env, serving
from tests.support.waiting import until


def env_for(tmp_path: Path) -> dict[str, str]:
    return {
        "DISPATCHER_STORAGE__URL": f"sqlite+aiosqlite:///{tmp_path / 'd.db'}",
        "DISPATCHER_RULES__PATH": str(TESTDATA / "rules-e2e"),
        "DISPATCHER_SERVER__PUBLIC_URL": "https://dispatch.example.org",
    }


def made_key(output: str) -> tuple[str, str]:
    key = re.search(r"^key: (dk_\S+)$", output, re.M)
    kid = re.search(r"^id: (key_[0-9a-f]{12}) ", output, re.M)
    assert key is not None, output
    assert kid is not None, output
    return key.group(1), kid.group(1)


async def test_keys_made_listed_and_revoked_while_the_service_runs(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    served_env = serve_env(
        db_url=env["DISPATCHER_STORAGE__URL"], rules=TESTDATA / "rules-e2e", keys=[]
    )
    async with serving(served_env, tmp_path) as served:
        assert served.banner[-1].startswith("auth: 0 API keys - every write will be refused")

        def cli(*args: str) -> str:
            done = run(*args, env=env)
            assert done.returncode == 0, done.stderr
            return done.stdout

        made = await asyncio.to_thread(
            cli, "keys", "new", "--name", "observatory", "--scope", "reports:write"
        )
        key, kid = made_key(made)
        assert "It works now: no restart needed." in made
        headers = {"Authorization": f"Bearer {key}"}
        body = {"id": "c1", "source": "obs", "kind": "fire", "region": "SY0703",
                "occurred_at": "2026-01-01T10:00:00+02:00"}  # fmt: skip
        async with aiohttp.ClientSession() as http:
            async with http.post(served.url + "/v1/reports", json=body, headers=headers) as r:
                assert r.status == 202, await r.text()
            # Two keys of one name: revoking by the name is refused, naming both ids.
            _, first = made_key(await asyncio.to_thread(
                cli, "keys", "new", "--name", "phone", "--scope", "devices:write",
                "--leader", "harim-lead-1",
            ))  # fmt: skip
            _, second = made_key(await asyncio.to_thread(
                cli, "keys", "new", "--name", "phone", "--scope", "devices:write",
                "--leader", "harim-lead-1",
            ))  # fmt: skip
            ambiguous = await asyncio.to_thread(run, "keys", "revoke", "phone", env=env)
            assert ambiguous.returncode == 1
            assert "2 keys are named 'phone'; give the id of one:" in ambiguous.stderr
            assert first in ambiguous.stderr
            assert second in ambiguous.stderr

            revoked = await asyncio.to_thread(cli, "keys", "revoke", "observatory")
            assert revoked.splitlines() == [
                f"revoked {kid} (observatory): refused from now on (within a second on every "
                "instance)",
                "0 phone(s) disabled, 0 pending push(es) not sent",
            ]

            async def status() -> int:
                body["id"] = "c2"
                async with http.post(served.url + "/v1/reports", json=body, headers=headers) as r:
                    return r.status

            await until(status, lambda s: s == 401, within=1.0, what="401 after revoke")

        listed = (await asyncio.to_thread(cli, "keys", "list")).splitlines()
        assert listed[0].split() == ["ID", "NAME", "SCOPES", "LEADER", "CREATED", "LAST", "USED",
                                     "REVOKED"]  # fmt: skip
        rows = {line.split()[0]: line for line in listed[1:]}
        assert set(rows) == {kid, first, second}
        assert rows[first].split()[1:4] == ["phone", "devices:write", "harim-lead-1"]
        assert rows[kid].split()[-1] != "-", "revoked, with the time"
        assert rows[first].endswith(" -")
        assert key not in "\n".join(listed)

    unknown = run("keys", "new", "--name", "p", "--scope", "devices:write", "--leader", "nobody",
                  env=env)  # fmt: skip
    assert unknown.returncode == 1
    assert "no leader 'nobody'" in unknown.stderr
    missing = run("keys", "revoke", "key_000000000000", env=env)
    assert missing.returncode == 1
    assert "no key with the id or name 'key_000000000000'" in missing.stderr


def test_leaders_pair_prints_a_code_to_read_aloud_and_a_qr_code(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    done = run("leaders", "pair", "harim-lead-1", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    code = re.fullmatch(
        rf"pairing code for Omar \(harim-lead-1\): ([{ALPHABET}]{{4}})-([{ALPHABET}]{{4}})",
        lines[0],
    )
    assert code is not None, lines[0]
    url = f"https://dispatch.example.org/app/#pair={code.group(1)}{code.group(2)}"
    assert lines[1].endswith(f"once (15 min); the phone opens {url}")
    assert "▀" in done.stdout or "▄" in done.stdout, "a QR code drawn in the terminal"
    assert len(lines) > 15

    unknown = run("leaders", "pair", "harim-lead-9", env=env)
    assert unknown.returncode == 1
    assert "no leader 'harim-lead-9'" in unknown.stderr


def self_signed(cert: Path, key: Path, name: str) -> x509.Certificate:
    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    made = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert.write_bytes(made.public_bytes(serialization.Encoding.PEM))
    return made


async def served_cert(url: str, trusted: Path) -> x509.Certificate | None:
    """The certificate a new connection sees, if it is the trusted one; None otherwise."""
    context = ssl.create_default_context(cafile=str(trusted))
    host, port = url.removeprefix("https://").split(":")
    try:
        _, writer = await asyncio.open_connection(host, int(port), ssl=context)
    except ssl.SSLCertVerificationError:
        return None
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return x509.load_der_x509_certificate(der)


async def test_https_from_the_configured_certificate_reloaded_on_sighup(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    first = self_signed(cert, key, "first")
    trusted_first = tmp_path / "first.pem"
    trusted_first.write_bytes(cert.read_bytes())
    env = serve_env(
        db_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}", rules=TESTDATA / "rules-e2e",
        keys=[], DISPATCHER_SERVER__TLS__CERT=str(cert), DISPATCHER_SERVER__TLS__KEY=str(key),
    )  # fmt: skip
    async with serving(env, tmp_path) as served:
        assert served.url.startswith("https://127.0.0.1:")
        assert (await served_cert(served.url, trusted_first)) == first
        context = ssl.create_default_context(cafile=str(trusted_first))
        async with aiohttp.ClientSession() as http:
            async with http.get(served.url + "/healthz", ssl=context) as r:
                assert r.status == 200
            try:
                async with http.get(served.url.replace("https", "http") + "/healthz") as r:
                    plain = r.status
            except aiohttp.ClientError:
                plain = 0
            assert plain != 200, "no plain HTTP on the TLS port"

        renewed_dir = tmp_path / "renewed"
        renewed_dir.mkdir()
        second = self_signed(renewed_dir / "cert.pem", renewed_dir / "key.pem", "second")
        (renewed_dir / "cert.pem").replace(cert)
        (renewed_dir / "key.pem").replace(key)
        both = tmp_path / "both.pem"
        both.write_bytes(trusted_first.read_bytes() + cert.read_bytes())
        handshakes = asyncio.create_task(handshake_all_along(served.url, both))
        served.proc.send_signal(signal.SIGHUP)
        seen = await until(
            lambda: served_cert(served.url, cert), lambda c: c is not None,
            what="the renewed certificate",
        )  # fmt: skip
        assert seen == second
        assert (await served_cert(served.url, trusted_first)) is None
        for _ in range(3):  # more renewals, each read while handshakes go on
            served.proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.2)
        if handshakes.done():
            handshakes.result()  # raises what broke a handshake
        handshakes.cancel()


async def handshake_all_along(url: str, trusted: Path) -> None:
    """Handshakes one after another until cancelled; a renewal must not reset any of them
    (it would if the key were read into the live context after the certificate)."""
    while True:
        assert (await served_cert(url, trusted)) is not None
