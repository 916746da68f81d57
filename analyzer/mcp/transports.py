"""The two ways the MCP server is reached.

- streamable HTTP at `/mcp` inside the analyzer: the API's bearer token, DNS-rebinding protection (Host and Origin
  checked against loopback, the analyzer's own address and `HPCMIND_MCP__ALLOWED_HOSTS`), stateless so any replica
  answers any request; the SDK routes both the initialize-handshake revisions and the 2026 stateless one.
- stdio (`hpcmind mcp`), what Claude Code and Claude Desktop launch: the same service over the configured
  database and Prometheus; the learned model loads only when a diagnosis needs it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from mcp.server import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from hpcmind.settings import Settings

from ..service import AnalyzerService

PATH = "/mcp"
MAX_BODY = 8 << 20  # an evidence bundle with its metric windows fits; more is refused with 413


def security(settings: Settings) -> TransportSecuritySettings:
    """Loopback always; the analyzer's bind address (unless 0.0.0.0) and public URL; then the operator's list."""
    a, m = settings.analyzer, settings.mcp
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if a.host not in ("0.0.0.0", "::", "127.0.0.1", "localhost"):
        hosts.append(f"{a.host}:*")
        origins.append(f"http://{a.host}:*")
    if a.public_url:
        u = urlsplit(a.public_url)
        if u.netloc:
            hosts.append(u.netloc)
            origins.append(f"{u.scheme}://{u.netloc}")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*hosts, *m.allowed_hosts],
        allowed_origins=[*origins, *m.allowed_origins],
    )


class _Endpoint:
    """Starlette's Route calls a plain function with a Request but an object as an ASGI app: this is the object."""

    def __init__(self, handle: ASGIApp) -> None:
        self.handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handle(scope, receive, send)


class HttpMount:
    """The `/mcp` endpoint and the session manager the analyzer's lifespan must run."""

    def __init__(self, mcp: MCPServer, settings: Settings) -> None:
        self.manager = StreamableHTTPSessionManager(
            app=mcp._lowlevel_server,  # the SDK's own streamable_http_app() wires it the same way
            json_response=True,
            stateless=True,
            security_settings=security(settings),
            max_request_body_size=MAX_BODY,
        )
        # the analyzer's AccessGate has checked the bearer token before the request reaches this endpoint
        self.app: ASGIApp = _Endpoint(self.manager.handle_request)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield


def stdio_service(settings: Settings) -> AnalyzerService:
    from ..rca import load_engine
    from ..store import Store

    a = settings.analyzer
    base = a.public_url or f"http://{a.host}:{a.port}"
    # the engine is lazy: listing incidents never waits for the learned model, the first open diagnosis does
    return AnalyzerService(settings, Store(a.database_url), load_engine(settings), runbook_base=base)


def run_stdio(settings: Settings) -> int:
    from .server import build_server

    service = stdio_service(settings)
    try:
        build_server(settings, lambda: service).run("stdio")
    finally:
        service.store.close()
    return 0
