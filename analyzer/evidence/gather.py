"""Gather the evidence bundle for an incident: metric windows (Prometheus HTTP API), logs (the log store), job."""

from __future__ import annotations

import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import ColumnElement, and_, not_, or_, select

from hpcmind.contract import EvidenceBundle, MetricSeries

from ..alertmanager import Alert
from ..rca.metric_rules import metric_hits
from ..store import Store, log_lines
from .breaker import Breaker
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


def chart_samples(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The SAMPLE_SERIES series a chart should show: first those a metric rule reads as a finding (an OOM-kill
    counter's single step is small beside a busy host's pressure counters), then those that moved most."""
    flagged = {h.series for h in metric_hits([MetricSeries.model_validate(s) for s in series])}
    order = sorted(range(len(series)), key=lambda i: (i not in flagged, -movement(series[i]["values"])))
    return [{**series[i], "values": downsample(series[i]["values"], SAMPLE_POINTS)} for i in order[:SAMPLE_SERIES]]


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
    prom_url: str,
    nodes: list[str],
    jobs: list[str],
    start: datetime,
    end: datetime,
    timeout: float = 5.0,
    *,
    breaker: Breaker | None = None,
    budget: float = 15.0,
    parallel: int = 4,
) -> tuple[list[dict[str, Any]], list[EvidenceItem]]:
    """Every catalogue query for the incident's nodes and jobs, `parallel` at a time, within `budget` seconds in
    all; what the breaker skips or the budget cuts off is marked `error` with the reason, never silently dropped."""
    breaker = breaker or Breaker()
    todo = [
        (q, q.render(node=ent) if q.scope == "node" else q.render(job=ent))
        for q in QUERIES
        for ent in (nodes if q.scope == "node" else jobs)
    ]
    s_iso, e_iso = start.isoformat(), end.isoformat()

    def one(name: str, query: str, client: httpx.Client) -> tuple[EvidenceItem, list[dict[str, Any]]]:
        item = EvidenceItem(name, query, s_iso, e_iso, STEP, "success")
        ok, why = breaker.allow()
        if not ok:
            item.status, item.error = "error", why
            return item, []
        try:
            res = prom_range(client, prom_url, query, start, end)
        except httpx.TransportError as exc:  # timeout, refused: the source, not the query
            breaker.failure(type(exc).__name__)
            item.status, item.error = "error", f"{type(exc).__name__}: {exc}"
            return item, []
        except (httpx.HTTPError, RuntimeError) as exc:  # Prometheus answered: this query failed
            breaker.success()
            item.status, item.error = "error", f"{type(exc).__name__}: {exc}"
            return item, []
        breaker.success()
        item.series = len(res)
        item.status = "success" if res else "no_data"
        series = []
        for r in res:
            labels = dict(r["metric"])
            name_ = labels.pop("__name__", name)
            vals = [[float(t), float(v)] for t, v in r["values"]]
            series.append({"name": name_, "labels": labels, "values": vals})
        item.samples = chart_samples(series)
        return item, series

    series: list[dict[str, Any]] = []
    items: list[EvidenceItem] = []
    client = httpx.Client(timeout=timeout)
    pool = ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="evidence")
    futures: list[Future[tuple[EvidenceItem, list[dict[str, Any]]]]] = []
    try:
        futures = [pool.submit(one, q.name, query, client) for q, query in todo]
        wait(futures, timeout=budget)
        for (q, query), f in zip(todo, futures, strict=True):
            if f.done() and not f.cancelled():
                item, got = f.result()
                items.append(item)
                series += got
            else:
                items.append(
                    EvidenceItem(
                        q.name, query, s_iso, e_iso, STEP, "error", f"skipped: evidence budget of {budget:g}s spent"
                    )
                )
    finally:
        # queries still in flight end within their own timeout; their answers are no longer wanted
        pool.shutdown(wait=False, cancel_futures=True)
        if all(f.done() for f in futures):
            client.close()
        else:
            threading.Thread(target=_close_after, args=(pool, client), daemon=True).start()
    return series, items


def _close_after(pool: ThreadPoolExecutor, client: httpx.Client) -> None:
    pool.shutdown(wait=True)
    client.close()


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
