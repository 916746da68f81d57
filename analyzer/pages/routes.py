"""`/`, `/incidents`, `/incidents/{id}`, `/runbooks/{name}`: server-rendered pages (the AccessGate guards them)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from hpcmind.settings import AnalyzerSettings, LinksSettings
from hpcmind.taxonomy import root_cause_ids, root_causes

from ..access.session import COOKIE, Role, csrf_ok, csrf_token, role_of_bearer, role_of_cookie
from .views import incident_view, list_row

_env = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")), autoescape=select_autoescape(["html"])
)
PAGE_ROWS = 200
FAVICON = (Path(__file__).with_name("templates") / "favicon.svg").read_bytes()


def _page(template: str, **ctx: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(template).render(**ctx))


def router(links: LinksSettings, a: AnalyzerSettings) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/")
    def home() -> RedirectResponse:
        return RedirectResponse("/incidents?state=open", status_code=303)

    @r.get("/incidents")
    def incident_list(
        request: Request,
        state: Literal["open", "resolved", ""] = "",
        root_cause: Annotated[str, Query(max_length=64)] = "",
        node: Annotated[str, Query(max_length=200)] = "",
        job: Annotated[str, Query(max_length=64)] = "",
        since: datetime | Literal[""] = "",
    ) -> HTMLResponse:
        svc = request.app.state.runtime.service
        filters = {"state": state or None, "root_cause": root_cause or None, "node": node or None, "job": job or None}
        res = svc.list_incidents(**filters, since=since or None, limit=PAGE_ROWS, offset=0)
        # open first, then newest
        rows = sorted(res["items"], key=lambda i: (i["state"] != "open", -i["id"]))
        counts = svc.cause_counts(state=filters["state"])
        return _page(
            "list.html",
            rows=[list_row(i) for i in rows],
            total=res["total"],
            counts=counts,
            causes=root_cause_ids(),
            filters={**filters, "since": since.isoformat(timespec="minutes") if since else ""},
        )

    @r.get("/incidents/{incident_id}")
    def incident_page(incident_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)], request: Request) -> HTMLResponse:
        from ..service import NotFound

        try:
            inc = request.app.state.runtime.service.get_incident(incident_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        csrf = csrf_token(request.cookies.get(COOKIE, ""), a)
        return _page("incident.html", i=incident_view(inc, links), csrf=csrf, causes=root_cause_ids())

    @r.post("/incidents/{incident_id}/feedback")
    def incident_feedback(
        incident_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)],
        request: Request,
        verdict: Annotated[Literal["right", "wrong"], Form()],
        true_root_cause: Annotated[str, Form(max_length=64)] = "",
        comment: Annotated[str, Form(max_length=5000)] = "",
        csrf: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        """The page's right/wrong buttons. A browser (session cookie) must send the page's form token; a client
        with a bearer header carries no ambient credential and needs none."""
        from ..service import BadRequest, NotFound

        bearer = role_of_bearer(request.headers.get("authorization", ""), a) is not None
        if not bearer and not csrf_ok(request.cookies.get(COOKIE, ""), csrf, a):
            raise HTTPException(403, "the form token is missing or stale: reload the incident page and try again")
        try:
            request.app.state.runtime.service.add_feedback(
                incident_id, verdict == "right", true_root_cause or None, comment.strip() or None
            )
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except BadRequest as exc:
            raise HTTPException(422, str(exc)) from None
        return RedirectResponse(f"/incidents/{incident_id}#feedback", status_code=303)

    @r.post("/incidents/{incident_id}/actions/{action_id}")
    def incident_action(
        incident_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)],
        action_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)],
        request: Request,
        decision: Annotated[Literal["approve", "reject"], Form()],
        csrf: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        """The page's approve/reject buttons: only an admin (the API token's session) decides a Slurm action."""
        from ..actions.service import ActionError, ActionNotFound

        cookie = request.cookies.get(COOKIE, "")
        bearer = role_of_bearer(request.headers.get("authorization", ""), a)
        role = bearer or role_of_cookie(cookie, a)
        if role is not Role.admin:
            raise HTTPException(403, "deciding a Slurm action needs the API token: log in with it at /login")
        if bearer is None and not csrf_ok(cookie, csrf, a):
            raise HTTPException(403, "the form token is missing or stale: reload the incident page and try again")
        svc = request.app.state.runtime.service.actions
        try:
            if svc.get(action_id)["incident_id"] != incident_id:
                raise ActionNotFound(f"incident {incident_id} has no action {action_id}")
            (svc.approve if decision == "approve" else svc.reject)(action_id, f"page ({role.value})")
        except ActionNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except ActionError as exc:
            raise HTTPException(409, str(exc)) from None
        return RedirectResponse(f"/incidents/{incident_id}#actions", status_code=303)

    @r.get("/favicon.ico")
    def favicon() -> Response:
        # browsers ask for it on every page; a 404 there is an error in every console
        return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    @r.get("/runbooks/{name}")
    def runbook(name: Annotated[str, PathParam(max_length=200)]) -> HTMLResponse:
        return _page("runbook.html", name=name, rc=root_causes().get(name))

    return r
