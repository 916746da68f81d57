"""The analyzer's front door, as ASGI middleware: it decides before any body is read.

- `/api/*` and `/mcp`: `Authorization: Bearer <API token>`; anything else is 401 without reading the body.
- pages (`/`, `/incidents…`, `/runbooks/…`, `/docs`, `/openapi.json`): the API token or the viewer token, as a
  bearer header or the signed session cookie `/login` sets; a browser without one is sent to `/login`.
- open: `/healthz`, `/metrics` (Prometheus scrapes it; counts only), `/login`, `/logout`, static assets.
- every request: a body over `max_body_bytes` is 413, by its Content-Length or while it streams.
"""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import quote

from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hpcmind.errors import UsageError
from hpcmind.settings import AnalyzerSettings

from .session import COOKIE, Role, role_of_bearer, role_of_cookie

log = logging.getLogger("hpcmind.access")
DEFAULT_TOKEN = "change-me"
OPEN = ("/healthz", "/metrics", "/login", "/logout", "/favicon.ico")
OPEN_PREFIXES = ("/static/",)
ADMIN_PREFIXES = ("/api/", "/mcp")


class _TooLarge(BaseException):
    """Raised from receive(); not an Exception, so FastAPI's body parser cannot turn it into a 400."""


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers") or []}


def _cookie(headers: dict[bytes, bytes], name: str) -> str:
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return ""


def needs(path: str) -> Role | None:
    """The least role a path needs (None: open)."""
    if path in OPEN or path.startswith(OPEN_PREFIXES):
        return None
    if path.startswith(ADMIN_PREFIXES):
        return Role.admin
    return Role.viewer


class AccessGate:
    def __init__(self, app: ASGIApp, settings: AnalyzerSettings) -> None:
        self.app, self.a = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        path: str = scope.get("path", "")
        limit = self.a.max_body_bytes
        length = headers.get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > limit:
            # visible to the operator: a refused Alertmanager notification is retried and refused again
            log.warning(
                "refused a %s-byte body on %s: over HPCMIND_ANALYZER__MAX_BODY_BYTES=%d (raise it for larger groups)",
                f"{int(length):,}", path, limit,
            )  # fmt: skip
            await _json(413, f"request body of {int(length):,} bytes is over the {limit:,}-byte limit")(
                scope, receive, send
            )
            return
        need = needs(path)
        if need is not None:
            bearer = role_of_bearer(headers.get(b"authorization", b"").decode("latin-1"), self.a)
            role = bearer or (None if need is Role.admin else role_of_cookie(_cookie(headers, COOKIE), self.a))
            if role is None or (need is Role.admin and role is not Role.admin):
                await self._refuse(scope, path, need, headers)(scope, receive, send)
                return
        await self._limited(scope, receive, send, limit)

    def _refuse(self, scope: Scope, path: str, need: Role, headers: dict[bytes, bytes]) -> Response:
        browser = b"text/html" in headers.get(b"accept", b"")
        if need is Role.viewer and scope.get("method") == "GET" and browser:
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + (f"?{query}" if query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        detail = "missing or wrong bearer token" if need is Role.admin else "log in at /login or send a bearer token"
        return JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            log.warning(
                "refused a streamed body on %s: over HPCMIND_ANALYZER__MAX_BODY_BYTES=%d", scope.get("path"), limit
            )
            await _json(413, f"request body is over the {limit:,}-byte limit")(scope, receive, send)


def _json(status: int, detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=status)


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_warned = False  # the loopback warning once per process (serve's preflight and create_app both check)


def check_exposure(a: AnalyzerSettings) -> None:
    """Refuse to listen beyond loopback with the default or an empty token; warn about it on loopback."""
    token = a.api_token.get_secret_value()
    weak = token in ("", DEFAULT_TOKEN)
    if weak and not _loopback(a.host):
        raise UsageError(
            f"the analyzer would listen on {a.host} with the default API token: set HPCMIND_ANALYZER__API_TOKEN "
            "to a secret (e.g. `openssl rand -hex 24`) or bind HPCMIND_ANALYZER__HOST=127.0.0.1"
        )
    global _warned
    if weak:
        if not _warned:
            _warned = True
            log.warning(
                "HPCMIND_ANALYZER__API_TOKEN is the default %r: fine on loopback, set a secret before exposing it",
                DEFAULT_TOKEN,
            )
    elif len(token) < 16 and not _loopback(a.host):
        log.warning("HPCMIND_ANALYZER__API_TOKEN is only %d characters long", len(token))
