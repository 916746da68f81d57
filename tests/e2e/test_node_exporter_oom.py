"""A real cluster's view, no simulator: Debian's stock node_exporter, the shipped rules, a real Slurm job that
exceeds its memory cgroup, the job's own output followed from its file — diagnosed host_oom with job and node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from hpcmind.services.catalog import NodeExporter, Slurm
from hpcmind.settings import Settings
from tests.conftest import ROOT, free_port, stop_process
from tests.e2e.conftest import analyzer_stack

DEADLINE = 240.0  # the job's end, a scrape, the rule, Alertmanager's group_wait and a diagnosis, on 2 busy cores
HOG = "b = bytearray(512 * 2**20); import time; time.sleep(5)"  # 512 MiB in a 64 MiB cgroup


def test_a_job_over_its_memory_cgroup_is_seen_by_the_stock_node_exporter(settings: Settings, tmp_path: Path) -> None:
    slurm = Slurm(settings)
    env = {**os.environ, **slurm.env()}
    out = slurm.dir / "jobs" / f"oom-{os.getpid()}"
    out.mkdir(parents=True, exist_ok=True)
    node = settings.slurm.node_name
    port = free_port()
    cluster = f"oom-{os.getpid()}"  # a fresh alert group: Alertmanager notifies this analyzer, not an earlier one
    # Jobs that ended in the last MinJobAge (300 s) are still reported by the Slurm source, and a node alert may join
    # their incidents: start from a node whose history is empty (at once on a fresh Slurm, as in `make test`)
    deadline = time.monotonic() + 330
    while _jobs_known(env) and time.monotonic() < deadline:
        time.sleep(5)
    assert not _jobs_known(env), f"jobs still known to slurmctld: {_jobs_known(env)}"
    with analyzer_stack(settings, tmp_path / "oom.db") as stack:
        exporter = stack.targets / f"node-exporter-{port}.json"
        collector_t = stack.targets / f"oom-collector-{port}.json"
        collector = subprocess.Popen(
            [sys.executable, "-m", "hpcmind", "collect", "--source", "slurm", "--log-bus", "http", "--port", str(port),
             "--follow", f"{out}/*.out=job/{{jobid}}"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        job = ""
        try:
            exporter.write_text(json.dumps(NodeExporter(settings).target(cluster)))
            collector_t.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"cluster": cluster}}]))
            before = _oom_kills(stack.prometheus, node, cluster, time.monotonic() + 90, offset="30s")
            res = subprocess.run(
                ["sbatch", "--parsable", "--mem=64M", "-o", str(out / "oom-%j.out"),
                 "--wrap", f"{sys.executable} -c '{HOG}'"],
                capture_output=True, text=True, env=env, check=True,
            )  # fmt: skip
            job = res.stdout.strip().split(";")[0]
            deadline = time.monotonic() + DEADLINE
            detail: dict[str, Any] = {}
            while time.monotonic() < deadline:  # the job's alert and the node's HostOOMKill, in either order
                mine = [i for i in stack.incidents() if i["culprit"].get("job") == job and i["root_cause"]]
                if mine:
                    detail = httpx.get(f"{stack.base}/api/v1/incidents/{mine[0]['id']}", headers=stack.headers).json()
                    if "HostOOMKill" in _alertnames(detail) and not detail["diagnosis_pending"]:
                        break
                time.sleep(1)
            after = _oom_kills(stack.prometheus, node, cluster, time.monotonic() + 30, more_than=before)
            assert after > before, "the kernel's OOM kill reached Prometheus through the stock node_exporter"
            seen = (stack.incidents(), httpx.get(stack.prometheus + "/api/v1/alerts").json()["data"]["alerts"])
            assert detail, f"job {job}: no incident in {DEADLINE:.0f}s: {stack.incidents()}"
        finally:
            exporter.unlink(missing_ok=True)
            collector_t.unlink(missing_ok=True)
            stop_process(collector)
            if job:
                subprocess.run(["scancel", job], env=env, check=False)
    assert "HostOOMKill" in _alertnames(detail), f"the shipped rule on the stock series: {_alertnames(detail)} {seen}"
    assert detail["root_cause"] == "host_oom", detail["diagnosis"]
    assert detail["culprit"]["node"] == node and detail["culprit"]["job"] == job
    host = next(e for e in detail["evidence"] if e["name"] == "host")
    assert host["status"] == "success" and any(s["name"] == "node_vmstat_oom_kill" for s in host["samples"])
    assert any("oom" in line.lower() for line in detail["diagnosis"]["evidence"]), detail["diagnosis"]["evidence"]


def _jobs_known(env: dict[str, str]) -> list[str]:
    res = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True, env=env)
    return res.stdout.split()


def _alertnames(detail: dict[str, Any]) -> set[str]:
    return {a["alertname"] for a in detail.get("alerts", [])}


def _oom_kills(prom: str, node: str, cluster: str, deadline: float, more_than: float = -1.0, offset: str = "") -> float:
    """node_vmstat_oom_kill for the node as Prometheus has it, polled until present (and above `more_than`). With
    `offset`, until the series is that old: the job starts only then, or its kill could predate the series (or the
    first 15 s step of the evidence window) and neither `increase` nor the evidence would see it rise."""
    v = -1.0
    sel = f'node_vmstat_oom_kill{{instance="{node}:9100", cluster="{cluster}"}}' + (
        f" offset {offset}" if offset else ""
    )
    while time.monotonic() < deadline:
        r = httpx.get(prom + "/api/v1/query", params={"query": sel})
        res = r.json()["data"]["result"]
        if res:
            v = float(res[0]["value"][1])
            if v > more_than:
                return v
        time.sleep(1)
    return v
