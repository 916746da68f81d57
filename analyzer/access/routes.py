"""`/login` and `/logout`: the page session (a signed cookie) from the API or viewer token."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from hpcmind.settings import AnalyzerSettings

from .session import COOKIE, MAX_AGE_S, issue, role_of_token

_env = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")), autoescape=select_autoescape(["html"])
)


def safe_next(target: str) -> str:
    """Only a path on this server: no scheme, no host, no `//evil.example` (an open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or any(c < " " for c in target):
        return "/"
    return target


def router(a: AnalyzerSettings) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    secure = a.public_url.startswith("https://")

    def page(next_: str, error: str = "", status: int = 200) -> HTMLResponse:
        body = _env.get_template("login.html").render(next=safe_next(next_), error=error)
        return HTMLResponse(body, status_code=status)

    @r.get("/login")
    def login_form(next: str = "/") -> HTMLResponse:
        return page(next)

    @r.post("/login")
    def login(
        token: Annotated[str, Form(max_length=4096)],
        next: Annotated[str, Form(max_length=2048)] = "/",
    ) -> Response:
        role = role_of_token(token, a)
        if role is None:
            return page(next, "That token is not the analyzer's API or viewer token.", status=401)
        res = RedirectResponse(safe_next(next), status_code=303)
        res.set_cookie(COOKIE, issue(role, a), max_age=MAX_AGE_S, httponly=True, samesite="lax", secure=secure)
        return res

    @r.get("/logout")
    def logout(request: Request) -> Response:
        res = RedirectResponse("/login", status_code=303)
        res.delete_cookie(COOKIE)
        return res

    return r
