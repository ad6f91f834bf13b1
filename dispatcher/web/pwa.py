"""The leaders' app: a Progressive Web App served at /app/ by the service itself.

The files in `web/app/` (HTML, CSS, plain JavaScript, a service worker, a manifest and
icons) are read once at start-up, gzipped once, and served with an ETag: nothing comes from
a CDN, and a phone on a poor link downloads each file once. `__APP_VERSION__` in the page
and the service worker is replaced by a digest of every file, so a new release changes the
service worker's bytes, which makes phones fetch the new shell and drop the old cache; the
page's script and style carry it as `?v=` and are cached for a year. The icons are drawn
by tools/make_icons.py; bench/app_load.py measures what a first load costs on the wire.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from dispatcher.web.auth import PUBLIC, requires
from dispatcher.web.openapi import documented

APP_DIR = Path(__file__).with_name("app")
PLACEHOLDER = b"__APP_VERSION__"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".webmanifest": "application/manifest+json; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
# Same origin only: no third-party script, style, font or connection can run in the app.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; manifest-src 'self'; worker-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
YEAR = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"  # kept, but asked again with If-None-Match (a 304 is a few bytes)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes | None  # None when gzip would not make it smaller (PNGs)
    etag: str
    content_type: str


@dataclass(frozen=True, slots=True)
class AppFiles:
    version: str
    assets: dict[str, Asset]  # by path under /app/, "" for the page


def load_app(folder: Path = APP_DIR) -> AppFiles:
    """Read, stamp and compress every file of the app (blocking: run it in a thread)."""
    raw = {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix in TYPES
    }
    digest = hashlib.sha256()
    for name, body in raw.items():
        digest.update(name.encode() + b"\0" + body + b"\0")
    version = digest.hexdigest()[:12]
    assets = {}
    for name, body in raw.items():
        body = body.replace(PLACEHOLDER, version.encode())
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        assets["" if name == "index.html" else name] = Asset(
            body=body,
            gzipped=packed if len(packed) < len(body) else None,
            etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"',
            content_type=TYPES[Path(name).suffix],
        )
    return AppFiles(version, assets)


APP_FILES = web.AppKey("app_files", AppFiles)


def _cache_control(name: str, request: web.Request, version: str) -> str:
    if name in ("", "sw.js", "manifest.webmanifest"):
        return REVALIDATE
    if request.query.get("v") == version:
        return YEAR
    if name.startswith("icons/"):
        return "public, max-age=604800"
    return REVALIDATE


@requires(PUBLIC)
@documented(
    "The leaders' app: its page (`/app/`) and files",
    responses={200: "the file", 304: "not modified (If-None-Match)", 404: "no such file"},
    response_media=sorted({t.split(";")[0] for t in TYPES.values()}),
    tags=["app"],
)
async def app_file(request: web.Request) -> web.Response:
    files = request.app[APP_FILES]
    name = request.match_info.get("name", "")
    if name == "index.html":
        name = ""
    asset = files.assets.get(name)
    if asset is None:
        raise web.HTTPNotFound()
    headers = {
        "ETag": asset.etag,
        "Cache-Control": _cache_control(name, request, files.version),
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if name == "":
        headers["Content-Security-Policy"] = CSP
        headers["Referrer-Policy"] = "no-referrer"
    if name == "sw.js":
        headers["Service-Worker-Allowed"] = "/app/"
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = asset.content_type
    return web.Response(body=body, headers=headers)


@requires(PUBLIC)
@documented("The leaders' app, at /app/", responses={308: "to /app/"}, tags=["app"])
async def app_root(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/app/")


def add_app_routes(app: web.Application) -> None:
    async def load(app: web.Application) -> None:
        app[APP_FILES] = await asyncio.to_thread(load_app)

    app.on_startup.append(load)
    app.router.add_get("/app", app_root)
    app.router.add_get("/app/", app_file)
    app.router.add_get("/app/{name:.+}", app_file)
