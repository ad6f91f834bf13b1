"""The API as its OpenAPI document says, and the service fuzzed from that document.

Schemathesis reads `/v1/openapi.json` from the real service on a free port and sends what it
generates (valid and invalid, seeded: the same cases on every run) with an admin key, so
that writes are exercised. Checks: no 5xx, status codes, content types and problem bodies
as documented, and nothing invalid accepted. `DISPATCHER_FUZZ_EXAMPLES=500` (or more) runs
longer; the default keeps the test within about a minute on a small machine.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dispatcher.app import make_app
from dispatcher.web.openapi import served_routes
from tests.support.harness import Keys, Running, running, settings_for

CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = int(os.environ.get("DISPATCHER_FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("DISPATCHER_FUZZ_SEED", "19"))


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Running]:
    keys = Keys()
    keys.add("admin", "admin")
    keys.add("phone", "devices:write", leader="idleb-lead-1")
    settings = settings_for(tmp_path, keys, server={"max_body_bytes": 64 * 1024})
    async with running(settings, keys) as svc:
        yield svc


async def test_every_route_is_documented_and_nothing_else(service: Running) -> None:
    status, doc = await service.get("/v1/openapi.json")
    assert status == 200
    assert doc["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    served = {(m, p) for m, p, _ in served_routes(make_app(service.service))}
    assert documented == served
    report = doc["paths"]["/v1/reports"]["post"]
    assert report["security"] == [{"bearer": ["reports:write"]}]
    assert set(report["requestBody"]["content"]) == {
        "application/json", "application/x-ndjson", "application/ndjson"
    }  # fmt: skip
    assert sorted(report["responses"]) == ["200", "202", "400", "401", "403", "409", "413",
                                           "415", "422", "429", "503", "507"]  # fmt: skip
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    fields = doc["components"]["schemas"]["ReportIn"]["properties"]
    assert fields["occurred_at"] == {"format": "date-time", "title": "Occurred At",
                                     "type": "string"}  # fmt: skip
    assert doc["components"]["schemas"]["LocationIn"]["properties"]["lat"]["maximum"] == 90


async def fuzz(service: Running, tmp_path: Path, key: str, *only: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG),
        "run", service.url + "/v1/openapi.json",
        "--header", f"Authorization: Bearer {service.keys.plain[key]}",
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance,negative_data_rejection",
        "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--generation-deterministic",
        "--workers", "1", "--request-timeout", "10",
        "--phases", "examples,coverage,fuzzing", "--no-color", *only,
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


@pytest.mark.timeout(300)
async def test_the_api_fuzzed_from_its_document_never_fails(
    service: Running, tmp_path: Path
) -> None:
    code, out = await fuzz(service, tmp_path, "admin")
    assert code == 0, out
    code, out = await fuzz(
        service, tmp_path, "phone", "--include-path-regex", "^/v1/(devices|groups/)"
    )
    assert code == 0, out
