"""The analyzer's HTTP face: `create_app(settings)`, thin routes over `AnalyzerService`."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
import swagger_ui_bundle  # type: ignore[import-untyped]
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import Route

from hpcmind.contract import EvidenceBundle
from hpcmind.errors import UsageError
from hpcmind.settings import Settings

from . import leases
from .access import AccessGate, Role, check_exposure
from .access import routes as access_routes
from .access.session import role_of_bearer
from .actions.service import ActionError, ActionNotFound
from .alertmanager import AlertmanagerPayload
from .grafana import GrafanaWriter
from .incident_metrics import OpenIncidents
from .intake import LogLineIn
from .notify.outbox import targets
from .notify.sender import NotifySender
from .pages import routes as pages_routes
from .rca import load_engine
from .service import AnalyzerService, BadRequest, Metrics, NotFound, check_feedback
from .store import Store

log = logging.getLogger("hpcmind.analyzer")


MAX_ID = 2**63 - 1  # the store's integer ids; larger ones are a 422, not an overflow
IncidentId = Annotated[int, PathParam(ge=1, le=MAX_ID)]


class LogBatch(BaseModel):
    lines: list[LogLineIn] = Field(max_length=10_000)


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    correct: bool
    true_root_cause: str | None = Field(None, description="required when correct is false: one of the 18 ids")
    comment: str | None = Field(None, max_length=5000)

    @model_validator(mode="after")
    def _cause_when_wrong(self) -> FeedbackIn:
        try:
            check_feedback(self.correct, self.true_root_cause)
        except BadRequest as exc:
            raise ValueError(str(exc)) from None
        return self


class ActionIn(BaseModel):
    """An operator's own action: in approve and auto it runs now (within the breaker), in dry-run it is recorded."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["drain", "resume", "requeue"]
    target: str = Field(min_length=1, max_length=200, pattern=r"^[\w.\-\[\],]+$", description="node name or job id")
    incident_id: int | None = Field(None, ge=1, le=MAX_ID)
    reason: str = Field("", max_length=200)
    by: str = Field("api", min_length=1, max_length=100, description="who asks (the audit log's requested_by)")


PROCESS_RETRIES = 5
# replicas: the outbox drainer's lease, how often the sweeper looks, and when an unfinished payload is another's
# leftover (its receiver normally finishes it within seconds)
LEADER_TTL_S = 30.0
SWEEP_S = 10.0
ORPHAN_AFTER_S = 60.0


class Runtime:
    """What the lifespan opens and closes: store, service, queue, background tasks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store = Store(settings.analyzer.database_url)
        self.metrics.registry.register(OpenIncidents(self.store))
        base = settings.analyzer.public_url or f"http://{settings.analyzer.host}:{settings.analyzer.port}"
        self.service = AnalyzerService(settings, self.store, load_engine(settings), self.metrics, base)
        self.grafana = GrafanaWriter(settings, self.store, self.metrics, base)
        self.notify = NotifySender(settings.notify, self.store, self.metrics)
        self.queue: asyncio.Queue[int] = asyncio.Queue(maxsize=settings.analyzer.queue_size)
        # payloads already stored durably that found the queue full between the check and the put (another
        # request took the last slot while this one was writing): they are answered 200 and queued when there is room
        self.backlog: collections.deque[int] = collections.deque()
        self.tasks: list[asyncio.Task[None]] = []
        self.failures: dict[int, int] = {}  # payload id -> failed processing attempts
        self.in_hand: set[int] = set()  # payloads queued here and not yet processed (the sweep leaves them)

    def model_state(self) -> str:
        """not loaded | loading | ready | failed; engines with nothing to load (signatures) are always ready."""
        state: str = getattr(self.service.engine, "state", "ready")
        return state

    def enqueue(self, pid: int) -> None:
        self.in_hand.add(pid)
        try:
            self.queue.put_nowait(pid)
        except asyncio.QueueFull:
            self.backlog.append(pid)
        self.metrics.queue.set(self.queue.qsize() + len(self.backlog))

    async def worker(self, recover: bool) -> None:
        if recover:  # incidents whose alerts were recorded before a crash but never diagnosed (one worker does it)
            try:
                done = await anyio.to_thread.run_sync(self.service.diagnose_pending)
                if done:
                    log.info("diagnosed %d incident(s) left undiagnosed by an earlier stop", len(done))
            except Exception:
                log.exception("diagnosing incidents left pending failed")
        while True:
            pid = await self.queue.get()
            try:
                await anyio.to_thread.run_sync(self.service.process, pid)
                self.failures.pop(pid, None)
                self.in_hand.discard(pid)
            except Exception:
                # a transient store error must not leave an accepted payload for the next restart: try again later
                n = self.failures[pid] = self.failures.get(pid, 0) + 1
                if n <= PROCESS_RETRIES:
                    log.exception("processing payload %d failed (attempt %d), retrying in %ds", pid, n, 5 * n)
                    asyncio.get_running_loop().call_later(5 * n, self.enqueue, pid)
                else:
                    log.exception("processing payload %d failed %d times; it is retried at the next start", pid, n)
            finally:
                self.queue.task_done()
                while self.backlog and not self.queue.full():
                    self.queue.put_nowait(self.backlog.popleft())
                self.metrics.queue.set(self.queue.qsize() + len(self.backlog))

    def _lead(self, name: str, ttl_s: float) -> bool:
        try:
            return leases.acquire(self.store, name, self.service.owner, ttl_s)
        except SQLAlchemyError:
            log.exception("lease %s: the store did not answer", name)
            return False

    async def outbox(self) -> None:
        """One replica at a time drains the outboxes (the `outbox` lease): Grafana and the webhooks see each
        incident's writes once and in order; another replica takes over when this one stops renewing."""
        while True:
            if await anyio.to_thread.run_sync(self._lead, "outbox", LEADER_TTL_S):
                try:
                    await anyio.to_thread.run_sync(self.grafana.drain_once)
                except Exception:
                    log.exception("grafana outbox pass failed")
                if targets(self.settings.notify):
                    try:
                        await anyio.to_thread.run_sync(self.notify.drain_once)
                    except Exception:
                        log.exception("notification outbox pass failed")
            await asyncio.sleep(1.0)

    async def sweeper(self) -> None:
        """What a replica that died left: payloads it accepted and never finished, incidents whose diagnosis lease
        ran out. One replica sweeps at a time (the `sweeper` lease); alone, it sweeps its own leftovers."""
        while True:
            await asyncio.sleep(SWEEP_S)
            if not await anyio.to_thread.run_sync(self._lead, "sweeper", 3 * SWEEP_S):
                continue
            try:
                for pid in await anyio.to_thread.run_sync(self.service.stale_payloads, ORPHAN_AFTER_S):
                    if pid not in self.in_hand:
                        self.enqueue(pid)
                await anyio.to_thread.run_sync(self.service.diagnose_pending)
            except Exception:
                log.exception("sweep failed")


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def require_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """Documents the bearer scheme in the OpenAPI schema; the AccessGate has already checked it."""
    if role_of_bearer(authorization or "", request.app.state.runtime.settings.analyzer) is not Role.admin:
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


Auth = Depends(require_token)
_DETAIL = {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}}
# what the AccessGate and the handlers answer besides 200/422, for the OpenAPI document
API_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong bearer token", "content": _DETAIL},
    413: {"description": "request body over HPCMIND_ANALYZER__MAX_BODY_BYTES", "content": _DETAIL},
}
MISSING: dict[int | str, dict[str, Any]] = {404: {"description": "no such incident", "content": _DETAIL}}
REFUSED: dict[int | str, dict[str, Any]] = {
    409: {"description": "actions are off, or the action is not awaiting approval", "content": _DETAIL}
}
BUSY: dict[int | str, dict[str, Any]] = {
    503: {"description": "queue full: retry after the Retry-After seconds", "content": _DETAIL}
}


def preflight(settings: Settings) -> None:
    """What `hpcmind serve` checks before it starts: exposure, the port, the store (each a UsageError naming its
    variable)."""
    a = settings.analyzer
    check_exposure(a)
    with socket.socket(socket.AF_INET6 if ":" in a.host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((a.host, a.port))
        except OSError as exc:
            raise UsageError(f"HPCMIND_ANALYZER__PORT {a.port}: cannot listen on {a.host} ({exc.strerror})") from None
    try:
        Store(a.database_url).close()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise UsageError(f"HPCMIND_ANALYZER__DATABASE_URL: cannot open the store ({reason})") from None


def create_app(settings: Settings) -> FastAPI:
    check_exposure(settings.analyzer)  # no default token beyond loopback
    mcp_mount = None
    if settings.mcp.enabled:
        from .mcp.server import build_server
        from .mcp.transports import HttpMount

        mcp_mount = HttpMount(build_server(settings, lambda: app.state.runtime.service), settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if mcp_mount is not None:
                await stack.enter_async_context(mcp_mount.running())
            async with _runtime(app):
                yield

    @asynccontextmanager
    async def _runtime(app: FastAPI) -> AsyncIterator[None]:
        rt = Runtime(settings)
        app.state.runtime = rt
        for pid in await anyio.to_thread.run_sync(rt.service.pending_payloads):
            rt.enqueue(pid)  # what was accepted before a crash is processed now (beyond the queue: the backlog)
        rt.tasks = [asyncio.create_task(rt.worker(i == 0)) for i in range(settings.analyzer.workers)]
        rt.tasks.append(asyncio.create_task(rt.outbox()))
        rt.tasks.append(asyncio.create_task(rt.sweeper()))
        warm = getattr(rt.service.engine, "warm", None)
        if warm is not None:  # serve at once; the learned model loads beside the signatures, which need none
            threading.Thread(target=warm, name="model-warm", daemon=True).start()
        if settings.analyzer.log_bus == "kafka":
            from .logbus import kafka_consumer

            rt.tasks.append(asyncio.create_task(kafka_consumer(settings, rt.service)))
        yield
        for t in rt.tasks:
            t.cancel()
        for t in rt.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        rt.notify.close()
        rt.store.close()

    # the API docs load their JavaScript from the swagger-ui-bundle package, never a CDN (the machines are offline)
    app = FastAPI(title="HPCMind analyzer", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    # the front door decides before any body is read: bearer token for the API and MCP, a session for pages
    app.add_middleware(AccessGate, settings=settings.analyzer)
    app.include_router(access_routes.router(settings.analyzer))
    app.include_router(pages_routes.router(settings.links, settings.analyzer))
    app.mount("/static/swagger-ui", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="HPCMind analyzer API",
            swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/swagger-ui/favicon-32x32.png",
        )

    if mcp_mount is not None:
        from .mcp.transports import PATH

        # the MCP streamable-HTTP endpoint itself (an ASGI app: the SDK reads the raw request and streams)
        app.router.routes.append(Route(PATH, endpoint=mcp_mount.app, methods=["GET", "POST", "DELETE"]))

    @app.post("/api/v1/alertmanager", dependencies=[Auth], responses={**API_ERRORS, **BUSY})
    async def webhook(payload: AlertmanagerPayload, rt: RuntimeDep) -> Response:
        if rt.queue.full():
            rt.metrics.webhook.labels("busy").inc()
            return JSONResponse({"detail": "queue full, retry later"}, status_code=503, headers={"Retry-After": "5"})
        pid = await anyio.to_thread.run_sync(rt.service.accept, payload)  # durable before the 200
        rt.enqueue(pid)
        rt.metrics.webhook.labels("accepted").inc()
        return JSONResponse({"payload": pid, "alerts": len(payload.alerts)})

    @app.post("/api/v1/logs", dependencies=[Auth], responses=API_ERRORS)
    async def ingest_logs(batch: LogBatch, rt: RuntimeDep) -> dict[str, int]:
        n = await anyio.to_thread.run_sync(rt.service.ingest_logs, [x.model_dump() for x in batch.lines])
        return {"accepted": n}

    @app.get("/api/v1/incidents", dependencies=[Auth], responses=API_ERRORS)
    def list_incidents(
        rt: RuntimeDep,
        state: Literal["open", "resolved"] | None = None,
        root_cause: str | None = None,
        node: str | None = None,
        job: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
        since: datetime | None = None,
    ) -> dict[str, Any]:
        return rt.service.list_incidents(
            state=state, root_cause=root_cause, node=node, job=job, limit=limit, offset=offset, since=since
        )

    @app.get("/api/v1/incidents/{incident_id}", dependencies=[Auth], responses={**API_ERRORS, **MISSING})
    def get_incident(incident_id: IncidentId, rt: RuntimeDep) -> dict[str, Any]:
        try:
            return rt.service.get_incident(incident_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @app.post("/api/v1/incidents/{incident_id}/feedback", dependencies=[Auth], responses={**API_ERRORS, **MISSING})
    def post_feedback(incident_id: IncidentId, body: FeedbackIn, rt: RuntimeDep) -> dict[str, str]:
        try:
            rt.service.add_feedback(incident_id, body.correct, body.true_root_cause, body.comment)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except BadRequest as exc:  # FeedbackIn already refuses it; kept for the service's own check
            raise HTTPException(422, [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]) from None
        return {"status": "recorded"}

    @app.get("/api/v1/actions", dependencies=[Auth], responses=API_ERRORS)
    def list_actions(
        rt: RuntimeDep,
        state: Literal["dry_run", "awaiting_approval", "done", "refused", "failed", "rejected"] | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        return {"mode": rt.service.actions.mode, "actions": rt.service.actions.recent(limit, state)}

    @app.post("/api/v1/actions", dependencies=[Auth], responses={**API_ERRORS, **MISSING, **REFUSED})
    def post_action(body: ActionIn, rt: RuntimeDep) -> dict[str, Any]:
        svc = rt.service.actions
        try:
            aid = svc.request(body.kind, body.target, body.by, body.incident_id, body.reason)
        except ActionNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except ActionError as exc:
            raise HTTPException(409, str(exc)) from None
        return svc.get(aid)

    @app.post(
        "/api/v1/actions/{action_id}/{decision}", dependencies=[Auth], responses={**API_ERRORS, **MISSING, **REFUSED}
    )
    def decide_action(
        action_id: IncidentId,
        decision: Literal["approve", "reject"],
        rt: RuntimeDep,
        by: Annotated[
            str, Query(min_length=1, max_length=100, description="who decides (the audit's decided_by)")
        ] = "api",
    ) -> dict[str, Any]:
        svc = rt.service.actions
        try:
            return svc.approve(action_id, by) if decision == "approve" else svc.reject(action_id, by)
        except ActionNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except ActionError as exc:
            raise HTTPException(409, str(exc)) from None

    @app.post("/api/v1/diagnose", dependencies=[Auth], responses=API_ERRORS)
    def diagnose(bundle: EvidenceBundle, rt: RuntimeDep) -> dict[str, Any]:
        return rt.service.engine.diagnose(bundle).to_json_dict()

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"description": "Prometheus text exposition", "content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}
        },
    )
    def metrics(rt: RuntimeDep) -> Response:
        rt.metrics.model_ready.set(1.0 if rt.model_state() == "ready" else 0.0)
        return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz(rt: RuntimeDep) -> dict[str, Any]:
        model = rt.model_state()
        return {"status": "ok", "schema_version": rt.store.version, "queue": rt.queue.qsize(), "model": model}

    return app
