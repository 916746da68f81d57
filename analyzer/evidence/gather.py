"""Gather the evidence bundle for an incident: metric windows (Prometheus HTTP API), logs (the log store), job."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import ColumnElement, and_, not_, or_, select

from hpcmind.contract import EvidenceBundle

from ..alertmanager import Alert
from ..store import Store, log_lines
from .queries import QUERIES

BEFORE = timedelta(minutes=10)
AFTER = timedelta(minutes=5)
STEP = "15s"
MAX_LOG_LINES = 400
MAX_DEVICE_MAP_LINES = 64  # one per rank of a job on 8 nodes × 8 GPUs
SAMPLE_SERIES = 8
SAMPLE_POINTS = 120


def movement(values: list[list[float]]) -> float:
    """How far a series moved in its window, relative to its size (0: flat); what a chart is worth drawing."""
    ys = [v for _, v in values if math.isfinite(v)]
    if len(ys) < 2:
        return 0.0
    return (max(ys) - min(ys)) / (max(abs(y) for y in ys) or 1.0)


def downsample(values: list[list[float]], most: int) -> list[list[float]]:
    """Every k-th finite point and the last, so a long window stays small in the store (JSON has no NaN)."""
    finite = [p for p in values if math.isfinite(p[1])]
    if len(finite) <= most:
        return finite
    k = math.ceil(len(finite) / most)
    out = finite[::k]
    return out if out[-1] is finite[-1] else [*out, finite[-1]]


@dataclass
class EvidenceItem:
    name: str
    query: str
    start: str
    end: str
    step: str
    status: str  # success | no_data | error
    error: str = ""
    series: int = 0
    # what the incident page draws: the SAMPLE_SERIES series that moved most, each at most SAMPLE_POINTS points
    samples: list[dict[str, Any]] = field(default_factory=list)


def prom_range(client: httpx.Client, base: str, query: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    r = client.get(
        f"{base}/api/v1/query_range",
        params={"query": query, "start": start.timestamp(), "end": end.timestamp(), "step": STEP},
    )
    if r.status_code != 200:
        raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
    data = r.json()
    if data.get("status") != "success":
        raise RuntimeError(str(data.get("error", "query failed")))
    return list(data["data"]["result"])


def gather_metrics(
    prom_url: str, nodes: list[str], jobs: list[str], start: datetime, end: datetime, timeout: float = 5.0
) -> tuple[list[dict[str, Any]], list[EvidenceItem]]:
    series: list[dict[str, Any]] = []
    items: list[EvidenceItem] = []
    with httpx.Client(timeout=timeout) as client:
        for q in QUERIES:
            for ent in nodes if q.scope == "node" else jobs:
                query = q.render(node=ent) if q.scope == "node" else q.render(job=ent)
                item = EvidenceItem(q.name, query, start.isoformat(), end.isoformat(), STEP, "success")
                try:
                    res = prom_range(client, prom_url, query, start, end)
                except (httpx.HTTPError, RuntimeError) as exc:
                    item.status, item.error = "error", f"{type(exc).__name__}: {exc}"
                    items.append(item)
                    if isinstance(exc, httpx.TransportError):
                        return series, items + [
                            EvidenceItem(
                                q2.name, "", item.start, item.end, STEP, "error", "skipped: Prometheus unreachable"
                            )
                            for q2 in QUERIES
                            if q2.name != q.name
                        ]
                    continue
                item.series = len(res)
                item.status = "success" if res else "no_data"
                items.append(item)
                for r in res:
                    labels = dict(r["metric"])
                    name = labels.pop("__name__", q.name)
                    vals = [[float(t), float(v)] for t, v in r["values"]]
                    series.append({"name": name, "labels": labels, "values": vals})
                    item.samples.append({"name": name, "labels": labels, "values": downsample(vals, SAMPLE_POINTS)})
                # keep what a chart would show: the series that moved most, not the first few flat ones
                item.samples = sorted(item.samples, key=lambda x: -movement(x["values"]))[:SAMPLE_SERIES]
    return series, items


def job_record(series: list[dict[str, Any]], job: str) -> dict[str, Any] | None:
    recs = [s for s in series if s["name"] == "hpcmind_slurm_job_info" and s["labels"].get("job_id") == job]
    if not recs:
        return None
    last = max(recs, key=lambda s: s["values"][-1][0] if s["values"] else 0)["labels"]
    return {
        "id": job,
        "name": last.get("name"),
        "state": last.get("state"),
        "exit_code": last.get("exit_code"),
        "nodes": [n for n in last.get("nodes", "").split(",") if n],
        "reason": last.get("reason"),
        "user": last.get("user"),
        "partition": last.get("partition"),
    }


def _lit(v: str) -> str:
    """A node or job name as a LIKE literal: its own `%` and `_` match only themselves (gpu_q001 is not gpuXq001)."""
    return v.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def gather_logs(
    store: Store, nodes: list[str], jobs: list[str], start: datetime, end: datetime
) -> tuple[list[dict[str, Any]], EvidenceItem]:
    on_node: list[ColumnElement[bool]] = []
    for n in nodes:
        on_node += [
            log_lines.c.source.like(f"node/{_lit(n)}/%", escape="\\"),
            log_lines.c.line.like(f"%{_lit(n)}%", escape="\\"),
        ]
    conds: list[ColumnElement[bool]] = []
    if on_node:
        # another job's own output names the shared node too (slurmstepd-node01: ...): it is that job's evidence
        conds.append(
            and_(or_(*on_node), not_(log_lines.c.source.like("job/%")), not_(log_lines.c.source.like("slurm/%")))
        )
    for j in jobs:
        conds += [
            log_lines.c.source == f"job/{j}",
            log_lines.c.source.like(f"job/{_lit(j)}/%", escape="\\"),
            log_lines.c.source == f"slurm/{j}",
            *(  # not JobId=42 for 4
                log_lines.c.line.like(f"%JobId={_lit(j)}{end}", escape="\\") for end in (" %", "", ".%", "(%")
            ),
        ]
    q = f"log_lines where source/line names {nodes + jobs}"
    item = EvidenceItem("logs", q, start.isoformat(), end.isoformat(), "", "no_data")
    if not conds:
        return [], item
    with store.tx() as c:
        rows = c.execute(
            select(log_lines.c.ts, log_lines.c.source, log_lines.c.line)
            .where(or_(*conds), log_lines.c.ts >= start, log_lines.c.ts <= end)
            .order_by(log_lines.c.ts)
            .limit(MAX_LOG_LINES)
        ).all()
    if jobs:
        rows = _device_map_lines(store, jobs, start) + list(rows)
    item.series = len(rows)
    item.status = "success" if rows else "no_data"
    return [
        {"ts": ts.isoformat() if hasattr(ts, "isoformat") else str(ts), "source": s, "line": ln} for ts, s, ln in rows
    ], item


def _device_map_lines(store: Store, jobs: list[str], start: datetime) -> list[Any]:
    """The jobs' NCCL init lines from before the window (`rank R ... nvmlDev X busId B`): printed once at start-up,
    they are what turns a failing rank or an Xid's PCI address into the GPU index operators use."""
    own = [
        c
        for j in jobs
        for c in (log_lines.c.source == f"job/{j}", log_lines.c.source.like(f"job/{_lit(j)}/%", escape="\\"))
    ]
    with store.tx() as c:
        return list(
            c.execute(
                select(log_lines.c.ts, log_lines.c.source, log_lines.c.line)
                .where(or_(*own), log_lines.c.ts < start, log_lines.c.line.like("%NCCL INFO%rank % nvmlDev %"))
                .order_by(log_lines.c.ts)
                .limit(MAX_DEVICE_MAP_LINES)
            ).all()
        )


def build_bundle(
    alert: Alert, logs: list[dict[str, Any]], metrics: list[dict[str, Any]], job: dict[str, Any] | None
) -> EvidenceBundle:
    data: dict[str, Any] = {
        "alert": {
            "labels": alert.labels,
            "annotations": alert.annotations,
            "startsAt": alert.startsAt.isoformat(),
            "status": alert.status,
        },
        "logs": logs,
        "metrics": [
            m
            for m in metrics
            if m["name"] != "hpcmind_slurm_job_info" and all(math.isfinite(v) or math.isnan(v) for _, v in m["values"])
        ],
    }
    if job:
        data["job"] = job
    return EvidenceBundle.model_validate(data)


def items_json(items: list[EvidenceItem]) -> list[dict[str, Any]]:
    return [asdict(i) for i in items]
