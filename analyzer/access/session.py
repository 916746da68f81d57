"""Tokens and the page session: constant-time comparison, a stateless cookie signed with the API token.

Two roles: `admin` (the API token: the API, MCP, webhook and pages) and `viewer` (the optional viewer token: pages
only). The cookie carries role, issue time and an HMAC over both keyed by the API token, so rotating the token ends
every session and nothing is stored server-side.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from enum import StrEnum

from hpcmind.settings import AnalyzerSettings

COOKIE = "hpcmind_session"
MAX_AGE_S = 12 * 3600


class Role(StrEnum):
    admin = "admin"
    viewer = "viewer"


def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def role_of_token(token: str, a: AnalyzerSettings) -> Role | None:
    if _same(token, a.api_token.get_secret_value()):
        return Role.admin
    if _same(token, a.viewer_token.get_secret_value()):
        return Role.viewer
    return None


def role_of_bearer(header: str, a: AnalyzerSettings) -> Role | None:
    scheme, _, token = header.partition(" ")
    return role_of_token(token.strip(), a) if scheme.lower() == "bearer" else None


def _mac(role: str, issued: int, a: AnalyzerSettings) -> str:
    key = a.api_token.get_secret_value().encode()
    return hmac.new(key, f"hpcmind-session|{role}|{issued}".encode(), hashlib.sha256).hexdigest()


def issue(role: Role, a: AnalyzerSettings, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    return f"{role.value}.{issued}.{_mac(role.value, issued, a)}"


def role_of_cookie(value: str, a: AnalyzerSettings, now: float | None = None) -> Role | None:
    parts = value.split(".")
    if len(parts) != 3 or parts[0] not in Role.__members__ or not parts[1].isdigit():
        return None
    issued = int(parts[1])
    t = now if now is not None else time.time()
    if not 0 <= t - issued <= MAX_AGE_S:
        return None
    return Role(parts[0]) if _same(parts[2], _mac(parts[0], issued, a)) else None


def csrf_token(cookie: str, a: AnalyzerSettings) -> str:
    """The form token a page embeds: bound to this session cookie, so a page on another site cannot forge a post
    (the cookie is also SameSite=Lax; this covers browsers and proxies that do not honour it)."""
    key = a.api_token.get_secret_value().encode()
    return hmac.new(key, f"hpcmind-csrf|{cookie}".encode(), hashlib.sha256).hexdigest()[:40]


def csrf_ok(cookie: str, sent: str, a: AnalyzerSettings) -> bool:
    return _same(sent, csrf_token(cookie, a))
