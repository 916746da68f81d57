"""Slurm through slurmrestd's REST API, or `squeue --json` / `sinfo --json` when no slurmrestd is configured.

pyslurm cannot be built against the Slurm 22.05 these machines have (PyPI has no matching release), so all access
goes through the `SlurmClient` interface below. Both clients return Slurm's own JSON (openapi v0.0.38 shapes).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
from prometheus_client.metrics_core import Metric

from ..exposition import label_string
from ..families import FamilyBuilder

NODE_STATES = ("alloc", "idle", "mix", "drain", "down")
QUEUE_STATES = {
    "pending": "PENDING",
    "running": "RUNNING",
    "completed": "COMPLETED",
    "failed": "FAILED",
    "timeout": "TIMEOUT",
    "preempted": "PREEMPTED",
    "node_fail": "NODE_FAIL",
    "cancelled": "CANCELLED",
}


class SlurmError(RuntimeError):
    pass


class SlurmClient(Protocol):
    name: str

    def jobs(self) -> list[dict[str, Any]]: ...

    def nodes(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class RestClient:
    """slurmrestd over a unix socket (rest_auth/local) or TCP with a JWT (X-SLURM-USER-TOKEN)."""

    name = "slurmrestd"

    def __init__(self, url: str, user: str = "", token: str = "", timeout: float = 5.0) -> None:
        headers = {"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token} if token else {}
        self.socket = Path(url[len("unix:") :]) if url.startswith("unix:") else None
        if url.startswith("unix:"):
            transport = httpx.HTTPTransport(uds=url[len("unix:") :])
            self.client = httpx.Client(
                transport=transport, base_url="http://localhost", headers=headers, timeout=timeout
            )
        else:
            self.client = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def _get(self, path: str, key: str) -> list[dict[str, Any]]:
        if self.socket is not None and not self.socket.exists():
            raise SlurmError(f"slurmrestd {path}: no socket at {self.socket}")
        try:
            r = self.client.get(f"/slurm/v0.0.38/{path}")
        except httpx.HTTPError as exc:
            raise SlurmError(f"slurmrestd {path}: {type(exc).__name__}: {exc}") from None
        if r.status_code != 200:
            raise SlurmError(f"slurmrestd {path}: HTTP {r.status_code}")
        data = r.json()
        if data.get("errors"):
            raise SlurmError(f"slurmrestd {path}: {data['errors'][0]}")
        return list(data.get(key, []))

    def jobs(self) -> list[dict[str, Any]]:
        return self._get("jobs", "jobs")

    def close(self) -> None:
        self.client.close()

    def nodes(self) -> list[dict[str, Any]]:
        return self._get("nodes", "nodes")


class CliClient:
    """`squeue --json` and `sinfo --json` (Slurm >= 21.08): zero configuration beyond SLURM_CONF."""

    name = "slurm-cli"

    def __init__(self, env: dict[str, str] | None = None, timeout: float = 10.0) -> None:
        self.env = {**os.environ, **(env or {})}
        self.timeout = timeout

    def _run(self, cmd: list[str], key: str) -> list[dict[str, Any]]:
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SlurmError(f"{cmd[0]}: {exc}") from None
        if res.returncode != 0:
            raise SlurmError(f"{' '.join(cmd)} exited {res.returncode}: {res.stderr.strip()[:200]}")
        return list(json.loads(res.stdout).get(key, []))

    def jobs(self) -> list[dict[str, Any]]:
        return self._run(["squeue", "--json"], "jobs")

    def close(self) -> None:
        pass

    def nodes(self) -> list[dict[str, Any]]:
        return self._run(["sinfo", "--json"], "nodes")


def exit_code(raw: int | None) -> str:
    """squeue's exit_code is the raw wait status; print it the way sacct does (exit:signal)."""
    if raw is None:
        return "0:0"
    if os.WIFSIGNALED(raw):
        return f"0:{os.WTERMSIG(raw)}"
    if os.WIFEXITED(raw):
        return f"{os.WEXITSTATUS(raw)}:0"
    return f"0:{raw & 0x7F}"


def node_state(state: str, flags: Iterable[str] = ()) -> str:
    s = state.lower()
    f = {x.upper() for x in flags}
    if "down" in s or "NOT_RESPONDING" in f:
        return "down"
    if "drain" in s or "DRAIN" in f:
        return "drain"
    for short, long in (("alloc", "allocated"), ("mix", "mixed"), ("idle", "idle")):
        if s.startswith(long) or s.startswith(short):
            return short
    return s


_GRES_GPU = re.compile(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)")


def gres_gpus(gres: str) -> int:
    """GPUs in a node's gres string: 'gpu:4', 'gpu:h100:8(S:0-1)', 'gpu:a100:2,gpu:v100:2,shard:8' (shards are not)."""
    return sum(int(m[1]) for m in _GRES_GPU.finditer(gres))


def job_info_labels(j: dict[str, Any]) -> dict[str, str]:
    gres = ",".join(j.get("gres_detail") or [])
    return {
        "job_id": str(j["job_id"]),
        "name": str(j.get("name", "")),
        "user": str(j.get("user_name", "")),
        "partition": str(j.get("partition", "")),
        "state": str(j.get("job_state", "")),
        "nodes": str(j.get("nodes", "")),
        "gpus": gres,
        "exit_code": exit_code(j.get("exit_code")),
        "reason": str(j.get("state_reason", "")),
    }


def slurm_families(jobs: list[dict[str, Any]], nodes: list[dict[str, Any]]) -> Iterable[Metric]:
    """Pure transform: Slurm's JSON -> the Slurm exporter's families plus our per-job info series."""
    fb = FamilyBuilder()
    states = [node_state(n.get("state", ""), n.get("state_flags", [])) for n in nodes]
    for st in NODE_STATES:
        fb.add(f"slurm_nodes_{st}", [""], np.array([float(states.count(st))]))
    counts: dict[str, int] = {}
    for j in jobs:
        counts[j.get("job_state", "")] = counts.get(j.get("job_state", ""), 0) + 1
    for name, st in QUEUE_STATES.items():
        fb.add(f"slurm_queue_{name}", [""], np.array([float(counts.get(st, 0))]))
    fb.add("slurm_jobs_outofmemory", [""], np.array([float(counts.get("OUT_OF_MEMORY", 0))]))
    nl = [label_string({"node": n["name"], "status": st}) for n, st in zip(nodes, states, strict=True)]
    fb.add("slurm_node_cpu_alloc", nl, np.array([float(n.get("alloc_cpus", 0)) for n in nodes]))
    fb.add("slurm_node_cpu_total", nl, np.array([float(n.get("cpus", 0)) for n in nodes]))
    # the GPUs Slurm schedules on each node (its gres): what an absent GPU is measured against
    fb.add("hpcmind_slurm_node_gpus", nl, np.array([float(gres_gpus(str(n.get("gres") or ""))) for n in nodes]))
    jl = [label_string(job_info_labels(j)) for j in jobs]
    fb.add("hpcmind_slurm_job_info", jl, np.ones(len(jobs)))
    return fb.families()


JobEvent = Callable[[str, str], None]  # (source, line)


class SlurmSource:
    name = "slurm"

    def __init__(self, client: SlurmClient, on_event: JobEvent | None = None) -> None:
        self.client = client
        self.on_event = on_event
        self._seen: dict[int, str] = {}

    def events(self, jobs: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """Job-state changes since the last look, as scontrol-style lines for the log bus."""
        out = []
        for j in jobs:
            jid, st = int(j["job_id"]), str(j.get("job_state", ""))
            if self._seen.get(jid) != st:
                self._seen[jid] = st
                lb = job_info_labels(j)
                out.append(
                    (
                        f"slurm/{jid}",
                        f"JobId={jid} JobName={lb['name']} UserId={lb['user']} JobState={st} "
                        f"Reason={lb['reason']} ExitCode={lb['exit_code']} "
                        f"Partition={lb['partition']} NodeList={lb['nodes']}",
                    )
                )
        return out

    def stop(self) -> None:
        self.client.close()

    def collect(self) -> Iterable[Metric]:
        jobs, nodes = self.client.jobs(), self.client.nodes()
        if self.on_event is not None:
            for source, line in self.events(jobs):
                self.on_event(source, line)
        return slurm_families(jobs, nodes)
