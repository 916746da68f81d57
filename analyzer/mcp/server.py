"""HPCMind's MCP server (the official `mcp` SDK's MCPServer): tools, resources and a prompt over the analyzer's
own service layer — the same `AnalyzerService` the HTTP API uses, so a diagnosis or an incident read here is the
one the API and the incident pages show.

Tools are read-only unless the operator sets `HPCMIND_MCP__ALLOW_WRITES=true`; every tool carries MCP tool
annotations, answers with `structuredContent` (and an output schema) plus a short text for reading, and turns
bad arguments into a tool error that names the argument.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from mcp_types import Tool as MCPTool
from pydantic import BaseModel, Field

from hpcmind.contract import BundleError, Diagnosis, parse_bundle
from hpcmind.settings import Settings
from hpcmind.taxonomy import UNKNOWN, root_causes

from ..diagnose_cli import human
from ..service import AnalyzerService, BadRequest, NotFound
from . import health, promql

READ = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)
READ_PROMETHEUS = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=True)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=False)
MAX_LOG_LINES = 20_000
INSTRUCTIONS = (
    "HPCMind diagnoses faults on Slurm GPU clusters. Start from list_incidents or get_incident; use node_health "
    "and job_health for a node or a Slurm job; diagnose pasted logs; query_metrics for raw PromQL."
)


class IncidentList(BaseModel):
    total: int
    items: list[dict[str, Any]]


class RootCauseInfo(BaseModel):
    id: str
    summary: str
    evidence: list[str]
    remediation: str


def _result(data: BaseModel | dict[str, Any], text: str) -> CallToolResult:
    payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=payload)


def _json_text(data: Any, limit: int = 4000) -> str:
    s = json.dumps(data, default=str)
    return s if len(s) <= limit else s[:limit] + " …(truncated; the structured result has everything)"


def _bounds(s: Settings) -> promql.Bounds:
    m = s.mcp
    return promql.Bounds(timedelta(hours=m.max_range_hours), m.max_points, m.max_series)


def log_text_bundle(text: str, max_bytes: int) -> dict[str, Any]:
    """Pasted log text as an evidence bundle: one log line per non-empty line."""
    if len(text.encode("utf-8")) > max_bytes:
        raise ToolError(f"log_text: {len(text.encode('utf-8'))} bytes; the limit is {max_bytes}")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ToolError("log_text: no log lines in it")
    if len(lines) > MAX_LOG_LINES:
        raise ToolError(f"log_text: {len(lines)} lines; the limit is {MAX_LOG_LINES}")
    return {"logs": [{"line": ln, "source": "pasted"} for ln in lines]}


def compact(schema: Any) -> Any:
    """A JSON schema without pydantic's generated `title`s ("Root Cause" for root_cause): they repeat the names
    and cost an assistant's context on every tools/list. A property *named* title is a dict and stays."""
    if isinstance(schema, dict):
        return {k: compact(v) for k, v in schema.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(schema, list):
        return [compact(v) for v in schema]
    return schema


class CompactServer(MCPServer):
    async def list_tools(self) -> list[MCPTool]:
        return [
            t.model_copy(update={"input_schema": compact(t.input_schema), "output_schema": compact(t.output_schema)})
            for t in await super().list_tools()
        ]


def build_server(settings: Settings, service: Callable[[], AnalyzerService]) -> MCPServer:
    """The MCP server over `service()` (looked up per call: the analyzer creates its service in its lifespan)."""
    mcp = CompactServer("hpcmind", title="HPCMind", version="0.1.0", instructions=INSTRUCTIONS, log_level="WARNING")
    bounds = _bounds(settings)
    prom_url = settings.analyzer.prometheus_url

    def ask(q: str) -> list[dict[str, Any]]:
        out = promql.query(prom_url, q, None, datetime.now(UTC), bounds)
        return list(out["result"])

    @mcp.tool(annotations=READ)
    async def diagnose(
        bundle: Annotated[
            dict[str, Any] | None, Field(description="evidence bundle: alert, job, logs, metrics")
        ] = None,
        log_text: Annotated[str | None, Field(description="or raw log text, one line per line")] = None,
    ) -> Annotated[CallToolResult, Diagnosis]:
        """Root cause, culprit, evidence and fixes for an evidence bundle or pasted logs."""
        if (bundle is None) == (log_text is None):
            raise ToolError("bundle, log_text: give exactly one of them")
        data = bundle if bundle is not None else log_text_bundle(log_text or "", settings.mcp.max_log_bytes)
        try:
            parsed = parse_bundle(data)
        except BundleError as exc:
            raise ToolError(f"{'bundle' if bundle is not None else 'log_text'}: {exc}") from None
        d = await anyio.to_thread.run_sync(service().engine.diagnose, parsed)
        return _result(d.to_json_dict(), human(d))

    @mcp.tool(annotations=READ)
    async def list_incidents(
        state: Literal["open", "resolved"] | None = None,
        root_cause: Annotated[str | None, Field(max_length=64)] = None,
        node: Annotated[str | None, Field(max_length=256)] = None,
        job: Annotated[str | None, Field(max_length=64)] = None,
        since: Annotated[str | None, Field(description="RFC 3339 or now-24h")] = None,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
    ) -> Annotated[CallToolResult, IncidentList]:
        """Incidents, newest first."""
        if root_cause and root_cause not in root_causes() and root_cause != UNKNOWN:
            raise ToolError(f"root_cause: {root_cause!r} is not a root-cause id (see root_causes)")
        try:
            t = promql.parse_time("since", since, datetime.now(UTC)) if since else None
        except promql.QueryRefused as exc:
            raise ToolError(str(exc)) from None
        out = await anyio.to_thread.run_sync(
            lambda: service().list_incidents(
                state=state, root_cause=root_cause, node=node, job=job, limit=limit, offset=0, since=t
            )
        )
        lines = [
            f"#{i['id']} {i['state']} {i['root_cause'] or 'undiagnosed'} {i['culprit']} {i['onset']}: {i['summary']}"
            for i in out["items"]
        ]
        text = f"{out['total']} incident(s)" + ("".join("\n" + x for x in lines) if lines else "")
        return _result(IncidentList(total=out["total"], items=out["items"]), text)

    @mcp.tool(annotations=READ)
    async def get_incident(id: Annotated[int, Field(ge=1)]) -> Annotated[CallToolResult, dict[str, Any]]:
        """One incident: diagnosis, culprit, evidence queries, timeline, fixes, alternatives, links."""
        inc = await _incident(service, id)
        d = inc.get("diagnosis") or {}
        text = (
            f"incident {id} ({inc['state']}): {inc.get('root_cause') or 'undiagnosed'} at {inc.get('culprit')}\n"
            f"{inc.get('summary') or ''}\nwhat to do: " + "; ".join(d.get("remediation", [])) + f"\npage: {inc['url']}"
        )
        hist = d.get("history") or {}
        seen = [c["message"] for c in hist.get("conclusions", [])] + list(hist.get("units", []))
        if seen:  # fleet memory: what this GPU and node went through before
            text += "\nhistory: " + "; ".join(seen)
        waiting = [a for a in inc.get("actions", []) if a["state"] == "awaiting_approval"]
        if waiting:
            text += "\nawaiting approval: " + "; ".join(f"action {a['id']} {a['kind']} {a['target']}" for a in waiting)
        return _result(inc, text)

    @mcp.tool(annotations=READ_PROMETHEUS)
    async def node_health(
        node: Annotated[str, Field(min_length=1, max_length=256)],
        hours: Annotated[float, Field(gt=0, le=24 * 7)] = 24.0,
    ) -> Annotated[CallToolResult, dict[str, Any]]:
        """A node's GPUs (Xid, ECC, remaps, NVLink, thermal), IB ports, host, and incidents."""
        now = datetime.now(UTC)
        window = timedelta(hours=hours)

        def incidents(state: str | None, since: datetime | None) -> list[dict[str, Any]]:
            found = service().list_incidents(
                state=state, root_cause=None, node=node, job=None, limit=100, offset=0, since=since
            )
            return list(found["items"])

        open_now = await anyio.to_thread.run_sync(incidents, "open", None)  # however old
        recent = await anyio.to_thread.run_sync(incidents, None, now - window)
        report = await anyio.to_thread.run_sync(lambda: health.node_report(ask, node, window, open_now, recent, now))
        verdict = "healthy" if report["healthy"] else "; ".join(report["problems"]) or "no data"
        return _result(report, f"{node}: {verdict}")

    @mcp.tool(annotations=READ_PROMETHEUS)
    async def job_health(
        job: Annotated[str, Field(min_length=1, max_length=64)],
        hours: Annotated[float, Field(gt=0, le=24 * 7)] = 24.0,
    ) -> Annotated[CallToolResult, dict[str, Any]]:
        """A Slurm job: state, nodes, GPUs, efficiency, and its incidents."""
        now = datetime.now(UTC)
        incs = await anyio.to_thread.run_sync(
            lambda: service().list_incidents(state=None, root_cause=None, node=None, job=job, limit=100, offset=0)[
                "items"
            ]
        )
        report = await anyio.to_thread.run_sync(lambda: health.job_report(ask, job, timedelta(hours=hours), incs, now))
        s = report["slurm"] or {}
        text = (
            f"job {job}: {s.get('state', 'not seen by Slurm in the window')} on {s.get('nodes', '?')}, "
            f"GPU util {report['usage'].get('gpu_util_avg_pct')}%, {len(incs)} incident(s)"
        )
        return _result(report, text)

    @mcp.tool(annotations=READ_PROMETHEUS)
    async def query_metrics(
        query: Annotated[str, Field(description="PromQL")],
        start: Annotated[str | None, Field(description="range start: RFC 3339 or now-1h; omit for instant")] = None,
        end: str | None = None,
        step: Annotated[str | None, Field(description="e.g. 30s")] = None,
    ) -> Annotated[CallToolResult, dict[str, Any]]:
        """Read-only PromQL against HPCMind's Prometheus (bounded range, step, series)."""
        now = datetime.now(UTC)
        try:
            q = promql.check_query(query)
            at = promql.parse_time("end", end, now)
            rng = None
            if start is not None:
                st = promql.parse_time("start", start, now)
                stp = promql.parse_duration("step", step) if step else None
                rng = promql.check_range(st, at, stp, bounds)
            elif step is not None:
                raise promql.QueryRefused("step: only with start (a range query)")
            out = await anyio.to_thread.run_sync(lambda: promql.query(prom_url, q, rng, at, bounds))
        except promql.QueryRefused as exc:
            raise ToolError(str(exc)) from None
        text = f"{out['series']} series ({out['result_type']})" + (", truncated" if out["truncated"] else "")
        return _result(out, text + "\n" + _json_text(out["result"]))

    @mcp.tool(name="root_causes", annotations=READ)
    def list_root_causes() -> Annotated[CallToolResult, dict[str, list[RootCauseInfo]]]:
        """The root-cause ids HPCMind names, with evidence and remediation."""
        rows = [RootCauseInfo(id=r.id, summary=r.summary, evidence=list(r.evidence), remediation=r.remediation)
                for r in root_causes().values()]  # fmt: skip
        return _result({"root_causes": [r.model_dump() for r in rows]}, "\n".join(f"{r.id}: {r.summary}" for r in rows))

    if settings.mcp.allow_writes:

        @mcp.tool(annotations=WRITE)
        async def submit_feedback(
            incident_id: Annotated[int, Field(ge=1)],
            correct: bool,
            true_root_cause: Annotated[str | None, Field(max_length=64)] = None,
            comment: Annotated[str | None, Field(max_length=5000)] = None,
        ) -> Annotated[CallToolResult, dict[str, str]]:
            """Record whether an incident's diagnosis was right (and the true cause if not)."""
            try:
                await anyio.to_thread.run_sync(
                    lambda: service().add_feedback(incident_id, correct, true_root_cause, comment)
                )
            except NotFound as exc:
                raise ToolError(f"incident_id: {exc}") from None
            except BadRequest as exc:
                raise ToolError(str(exc)) from None
            return _result({"status": "recorded"}, f"feedback recorded on incident {incident_id}")

        @mcp.tool(annotations=WRITE)
        async def decide_action(
            action_id: Annotated[int, Field(ge=1, description="an action of get_incident's `actions`")],
            decision: Literal["approve", "reject"],
            by: Annotated[str, Field(min_length=1, max_length=100, description="who decides, for the audit")],
        ) -> Annotated[CallToolResult, dict[str, Any]]:
            """Approve or reject a Slurm action (drain, resume, requeue) awaiting approval; the breaker applies."""
            from ..actions.service import ActionError, ActionNotFound

            acts = service().actions
            try:
                fn = acts.approve if decision == "approve" else acts.reject
                row = await anyio.to_thread.run_sync(lambda: fn(action_id, f"mcp: {by}"))
            except (ActionNotFound, ActionError) as exc:
                raise ToolError(f"action_id: {exc}") from None
            return _result(row, f"action {action_id} ({row['kind']} {row['target']}): {row['state']}: {row['detail']}")

    @mcp.resource("incident://{id}", mime_type="application/json")
    async def incident_resource(id: str) -> str:
        """An incident as JSON."""
        if not id.isdigit():
            raise ResourceNotFoundError(f"incident://{id}: the id is a number")
        try:
            inc = await anyio.to_thread.run_sync(service().get_incident, int(id))
        except NotFound as exc:
            raise ResourceNotFoundError(f"incident://{id}: {exc}") from None
        return json.dumps(inc, default=str)

    @mcp.resource("runbook://{root_cause}", mime_type="text/markdown")
    def runbook(root_cause: str) -> str:
        """What a root cause looks like and how to fix it."""
        rc = root_causes().get(root_cause)
        if rc is None:
            raise ResourceNotFoundError(f"runbook://{root_cause}: not a root-cause id")
        ev = "\n".join(f"- {e}" for e in rc.evidence)
        return f"# {rc.id}\n\n{rc.summary}\n\n## Evidence\n\n{ev}\n\n## Remediation\n\n{rc.remediation}\n"

    @mcp.resource("hpcmind://root-causes", mime_type="application/json")
    def taxonomy() -> str:
        """The root-cause taxonomy."""
        return json.dumps([{"id": r.id, "summary": r.summary} for r in root_causes().values()])

    @mcp.prompt()
    def investigate_alert(alertname: str, node: str = "", job: str = "") -> str:
        """Investigate a firing alert with HPCMind's tools."""
        where = " ".join(x for x in (f"on node {node}" if node else "", f"for job {job}" if job else "") if x)
        return (
            f"The alert {alertname} is firing {where}.".replace("  ", " ")
            + " Use HPCMind: list_incidents (state=open) to find the incident it opened and get_incident for its "
            "diagnosis; node_health / job_health for the node or job; query_metrics only to confirm a signal. "
            "Answer with the root cause, where it is (node, GPU, job), the evidence lines, and the fix."
        )

    return mcp


async def _incident(service: Callable[[], AnalyzerService], iid: int) -> dict[str, Any]:
    try:
        return await anyio.to_thread.run_sync(service().get_incident, iid)
    except NotFound as exc:
        raise ToolError(f"id: {exc}") from None
