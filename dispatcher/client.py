"""The service's HTTP API from the other side: what `dispatcher silences` sends, like amtool.

A small client for one running service (its URL and an API key). It says what the service
answered as plain values, or raises `Refused` (a 4xx/5xx with the problem's lines) or
`Unreachable`; printing is the command line's.
"""

from __future__ import annotations

from typing import Any

import aiohttp


class Refused(Exception):
    """The service answered with a problem (RFC 9457): its status and one line per point."""

    def __init__(self, status: int, lines: list[str]) -> None:
        super().__init__(f"{status}: {'; '.join(lines)}")
        self.status = status
        self.lines = lines


class Unreachable(Exception):
    """The service did not answer."""


class Client:
    def __init__(self, url: str, key: str) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}"}

    async def add_silence(
        self,
        *,
        matchers: dict[str, list[str]],
        duration: str,
        author: str,
        reason: str,
        starts_at: str | None = None,
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {
            "matchers": matchers, "duration": duration, "author": author, "reason": reason,
        }  # fmt: skip
        if starts_at:
            body["starts_at"] = starts_at
        return [await self._call("POST", "/v1/silences", body)]

    async def list_silences(self, *, expired_too: bool = False) -> list[dict[str, Any]]:
        answer = await self._call("GET", "/v1/silences" + ("?all=1" if expired_too else ""))
        silences: list[dict[str, Any]] = answer["silences"]
        return silences

    async def expire_silence(self, silence_id: str) -> list[dict[str, Any]]:
        return [await self._call("DELETE", f"/v1/silences/{silence_id}")]

    async def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.request(method, self.url + path, json=body, headers=self.headers) as resp,
            ):
                status, answer = resp.status, await resp.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise Unreachable(f"{self.url}: {exc}") from exc
        if not isinstance(answer, dict):
            raise Refused(status, [f"not a JSON object: {answer!r}"])
        if status >= 400:
            lines = [str(answer.get("detail") or answer.get("title"))]
            lines += [f"{e['field']}: {e['message']}" for e in answer.get("errors", [])]
            raise Refused(status, lines)
        return answer


def silence_line(s: dict[str, Any]) -> str:
    """A silence as `silences list` prints it."""
    m = ", ".join(f"{k}={','.join(v)}" for k, v in s["matchers"].items() if v)
    return (f"{s['id']}  {s['state']:8}  {s['starts_at']} -> {s['ends_at']}  {m}  "
            f"by {s['author']}: {s['reason']}")  # fmt: skip
