"""Evidence bundles cut from a simulator run directory, the way the analyzer would gather them live.

For an incident on a node/job at an onset time: the kernel logs of that node and of the job's nodes, the job's
ranks and slurmctld lines naming either, up to the next incident on the same node or job; the metric windows of
the node's GPUs, host and HCAs and the job's workload series; the Slurm job record. Pure reading: the run
directory is not modified.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

LOG_BEFORE, LOG_AFTER = 300.0, 300.0
METRIC_BEFORE, METRIC_AFTER = 600.0, 300.0
MAX_POINTS = 40


@dataclass
class Run:
    dir: Path
    metrics: pl.DataFrame  # timestamp(s), name, labels, value
    logs: pl.DataFrame  # ts(s), source, line
    truth: list[dict[str, Any]]

    @classmethod
    def load(cls, run_dir: Path) -> Run:
        m = (
            pl.read_parquet(run_dir / "metrics.parquet")
            if (run_dir / "metrics.parquet").exists()
            else pl.DataFrame(
                schema={
                    "timestamp": pl.Datetime("ms", "UTC"),
                    "name": pl.String,
                    "labels": pl.String,
                    "value": pl.Float64,
                }
            )
        )
        m = m.with_columns(
            pl.col("timestamp").dt.epoch("ms").cast(pl.Float64) / 1000,
            pl.col("name").cast(pl.String),
            pl.col("labels").cast(pl.String),
        )
        rows = [json.loads(x) for x in (run_dir / "logs.jsonl").read_text().splitlines() if x.strip()]
        logs = pl.DataFrame(
            {
                "ts": [_epoch(r["ts"]) for r in rows],
                "source": [r["source"] for r in rows],
                "line": [r["line"] for r in rows],
            },
            schema={"ts": pl.Float64, "source": pl.String, "line": pl.String},
        )
        truth = [json.loads(x) for x in (run_dir / "ground_truth.jsonl").read_text().splitlines() if x.strip()]
        return cls(run_dir, m, logs, truth)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _log_window(run: Run, onset: float, nodes: list[str], job: str | None, end: float) -> list[dict[str, str]]:
    sel = pl.lit(False)
    for node in nodes:
        sel = (
            sel
            | pl.col("source").str.starts_with(f"node/{node}/")
            | ((pl.col("source") == "slurmctld") & pl.col("line").str.contains(node, literal=True))
        )
    if job:
        sel = (
            sel
            | pl.col("source").str.starts_with(f"job/{job}/")
            | (pl.col("source") == f"job/{job}")
            | ((pl.col("source") == "slurmctld") & pl.col("line").str.contains(f"JobId={job}", literal=True))
        )
    win = run.logs.filter(sel & pl.col("ts").is_between(onset - LOG_BEFORE, end)).sort("ts")
    from datetime import UTC

    return [
        {"source": s, "ts": datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "line": ln}
        for t, s, ln in win.iter_rows()
    ]


def _thin(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """At most ~MAX_POINTS regular samples, plus every point where the value changed (a spike must survive)."""
    if len(pts) <= MAX_POINTS:
        return pts
    step = len(pts) // MAX_POINTS + 1
    keep = {i for i in range(0, len(pts), step)} | {len(pts) - 1}
    changes = {i for i in range(1, len(pts)) if pts[i][1] != pts[i - 1][1]}
    if len(changes) <= MAX_POINTS:
        keep |= changes | {i - 1 for i in changes}
    return [pts[i] for i in sorted(keep)]


def _metric_window(run: Run, onset: float, node: str | None, job: str | None) -> list[dict[str, Any]]:
    keys = []
    if node:
        keys += [f'"Hostname":"{node}"', f'"instance":"{node}:9100"', f'"hostname":"{node}"']
    if job:
        keys += [f'"job_id":"{job}"']
    if not keys:
        return []
    win = run.metrics.filter(pl.col("timestamp").is_between(onset - METRIC_BEFORE, onset + METRIC_AFTER))
    labels = win.select(pl.col("labels").unique())["labels"].to_list()
    wanted = [
        lb
        for lb in labels
        if (any(k in lb for k in keys) and '"hpc_job"' not in lb) or (job and f'"hpc_job":"{job}"' in lb)
    ]
    win = win.filter(pl.col("labels").is_in(wanted) & ~pl.col("name").str.starts_with("hpcmind_"))
    out = []
    for (name, lb), grp in win.sort("timestamp").group_by(["name", "labels"], maintain_order=True):
        pts = _thin(grp.select("timestamp", "value").rows())
        out.append({"name": name, "labels": json.loads(lb), "values": [[t, v] for t, v in pts]})
    return out


def _job_record(run: Run, onset: float, job: str | None) -> dict[str, Any] | None:
    if not job:
        return None
    info = run.metrics.filter(
        (pl.col("name") == "hpcmind_slurm_job_info")
        & pl.col("labels").str.contains(f'"job_id":"{job}"', literal=True)
        & (pl.col("timestamp") <= onset + METRIC_AFTER)
    ).sort("timestamp")
    if info.is_empty():
        return None
    lb = json.loads(info["labels"][-1])
    return {
        "id": job,
        "name": lb["name"],
        "state": lb["state"],
        "exit_code": lb["exit_code"],
        "nodes": [n for n in lb["nodes"].split(",") if n],
        "reason": lb["reason"],
        "user": lb["user"],
        "partition": lb["partition"],
    }


def _job_end(run: Run, onset: float, job: str | None) -> float | None:
    """When the job left RUNNING after the onset: the moment its failure alert would fire."""
    if not job:
        return None
    ended = run.metrics.filter(
        (pl.col("name") == "hpcmind_slurm_job_info")
        & pl.col("labels").str.contains(f'"job_id":"{job}"', literal=True)
        & ~pl.col("labels").str.contains('"state":"RUNNING"', literal=True)
        & ~pl.col("labels").str.contains('"state":"PENDING"', literal=True)
        & (pl.col("timestamp") >= onset)
    )
    return float(ended["timestamp"].min()) if not ended.is_empty() else None  # type: ignore[arg-type]


def bundle_for(
    run: Run, onset: float, node: str | None, job: str | None, quiet: bool = False, until: float | None = None
) -> dict[str, Any]:
    # the analyzer gathers evidence when an alert fires: at the onset, or when the job ended (late failures such
    # as a rendezvous store timeout show their lines only then); a quiet window (a control) ends at onset + 300 s.
    # `until`: the next incident on the same node or job, whose evidence is its own bundle's
    end = onset + LOG_AFTER if quiet else max(onset + LOG_AFTER, (_job_end(run, onset, job) or 0.0) + 60.0)
    if until is not None:
        end = min(end, until - 1.0)
    rec = _job_record(run, onset, job)
    # like the live analyzer, the log window covers the job's nodes too (a shared-filesystem stall names no node)
    nodes = sorted(({node} if node else set()) | set(rec["nodes"] if rec else ()))
    bundle: dict[str, Any] = {
        "logs": _log_window(run, onset, nodes, job, end),
        "metrics": _metric_window(run, onset, node, job),
    }
    if rec is not None:
        bundle["job"] = rec
    return bundle


def next_onset(run: Run, truth: dict[str, Any]) -> float | None:
    """The onset of the next incident that touches this one's node or job."""
    onset, c = float(truth["onset_ts"]), truth["culprit"]
    later = [
        float(t["onset_ts"])
        for t in run.truth
        if t is not truth
        and float(t["onset_ts"]) > onset
        and (
            (c.get("node") and t["culprit"].get("node") == c.get("node"))
            or (c.get("job") and t["culprit"].get("job") == c.get("job"))
        )
    ]
    return min(later, default=None)


def bundle_for_truth(run: Run, truth: dict[str, Any]) -> dict[str, Any]:
    c = truth["culprit"]
    return bundle_for(run, float(truth["onset_ts"]), c.get("node"), c.get("job"), until=next_onset(run, truth))
