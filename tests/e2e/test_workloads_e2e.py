"""The astro workloads as real Slurm jobs through the whole pipeline, no simulator anywhere.

Six jobs run side by side on the local Slurm node: TransitNet normal and with `--fault host-oom`, `nan` and
`hang`; AstroCode serving a few requests, and overloaded by its load generator.
`hpcmind collect --source slurm` (a real subprocess) reports job states and ships the jobs' output files to the
analyzer; Prometheus scrapes it and the ranks' own /metrics (file_sd); the shipped rules fire through
Alertmanager; the analyzer must name the right root cause for each failed job, quote the line that proves it,
and open nothing for the normal run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from astro_workloads.workloads import submit
from hpcmind.services.catalog import Slurm
from hpcmind.settings import Settings
from tests.conftest import ROOT, free_port, stop_process
from tests.e2e.conftest import Stack, analyzer_stack

# fault -> (root cause, Slurm end state, what the quoted evidence must say: any of these)
CHAINS = {
    "host-oom": ("host_oom", "OUT_OF_MEMORY", ("oom-kill event",)),
    "nan": ("numerical_divergence", "FAILED", ("loss=nan", "Loss is nan")),
    # gloo words its collective timeout by where it was caught
    "hang": ("collective_hang", "FAILED", ("Timed out waiting", "timeout caused pair closure")),
}
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING")
DEADLINE = 240.0  # the hang needs its 30 s collective timeout; two real cores run all four jobs at once


def promql(stack: Stack, query: str) -> list[dict[str, Any]]:
    r = httpx.get(stack.prometheus + "/api/v1/query", params={"query": query})
    return list(r.json()["data"]["result"])


def job_state(settings: Settings, job: str) -> str:
    out = subprocess.run(
        ["scontrol", "show", "job", job], capture_output=True, text=True, env={**os.environ, **Slurm(settings).env()}
    ).stdout
    return out.split("JobState=")[1].split()[0] if "JobState=" in out else "?"


@dataclass
class Chains:
    stack: Stack
    jobs: dict[str, str]  # fault (or "none", "serve", "overload") -> Slurm job id
    out: Path  # the jobs' output files


@pytest.fixture(scope="module")
def chains(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chains]:
    tmp = tmp_path_factory.mktemp("workloads")
    out = Slurm(settings).dir / "jobs" / f"e2e-{os.getpid()}"
    port = free_port()
    with analyzer_stack(settings, tmp / "e2e.db") as stack:
        target = stack.targets / f"e2e-collector-{port}.json"
        collector = subprocess.Popen(
            [sys.executable, "-m", "hpcmind", "collect", "--source", "slurm", "--log-bus", "http", "--port", str(port),
             "--follow", f"{out}/*.out=job/{{jobid}}"],
            env={**os.environ, **Slurm(settings).env()}, cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        jobs: dict[str, str] = {}
        try:
            target.write_text(f'[{{"targets": ["127.0.0.1:{port}"], "labels": {{"cluster": "local"}}}}]')
            jobs["serve"] = submit(settings, "astrocode", "none", True, out)
            for fault in ("none", *CHAINS):
                jobs[fault] = submit(settings, "transitnet", fault, True, out)
            # the overload gets the two cores' decoding to itself once the light server is done, or the light
            # one would be overloaded too (and rightly diagnosed so)
            wait_until_ended(settings, jobs["serve"])
            jobs["overload"] = submit(settings, "astrocode", "overload", False, out)
            yield Chains(stack, jobs, out)
        finally:
            target.unlink(missing_ok=True)
            stop_process(collector)
            if jobs:
                subprocess.run(["scancel", *jobs.values()], env={**os.environ, **Slurm(settings).env()}, check=False)


def wait_until_ended(settings: Settings, job: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while job_state(settings, job) in ACTIVE and time.monotonic() < deadline:
        time.sleep(1)


def incident_for(stack: Stack, job: str) -> dict[str, Any] | None:
    mine = [i for i in stack.incidents() if i["culprit"].get("job") == job and i["root_cause"]]
    return mine[0] if mine else None


@pytest.mark.parametrize("fault", list(CHAINS))
def test_a_failing_job_is_diagnosed_from_its_own_evidence(settings: Settings, chains: Chains, fault: str) -> None:
    stack, jobs = chains.stack, chains.jobs
    cause, state, quotes = CHAINS[fault]
    job = jobs[fault]
    wait_until_ended(settings, job)
    deadline = time.monotonic() + 30  # the end-state alert follows the job's end within a few seconds
    while (inc := incident_for(stack, job)) is None and time.monotonic() < deadline:
        time.sleep(1)
    assert job_state(settings, job) == state
    # the collector's Slurm source reported the end state, and Prometheus has it
    assert promql(stack, f'hpcmind_slurm_job_info{{job_id="{job}", state="{state}"}}')
    assert inc is not None, f"no incident for job {job} ({fault}) within {DEADLINE:.0f}s"
    detail = httpx.get(f"{stack.base}/api/v1/incidents/{inc['id']}", headers=stack.headers).json()
    assert detail["root_cause"] == cause, detail["diagnosis"]
    assert detail["culprit"]["job"] == job and detail["culprit"]["node"] == settings.slurm.node_name
    assert any(q in e for q in quotes for e in detail["diagnosis"]["evidence"]), detail["diagnosis"]["evidence"]
    assert job in detail["entities"]["jobs"] and set(detail["entities"]["jobs"]) == {job}


def test_a_normal_run_completes_is_scraped_and_raises_nothing(settings: Settings, chains: Chains) -> None:
    stack, jobs = chains.stack, chains.jobs
    job = jobs["none"]
    wait_until_ended(settings, job)
    assert job_state(settings, job) == "COMPLETED"
    # every rank's step counter reached Prometheus before the job ended (the ranks wait for a final scrape)
    steps = promql(stack, f'max by (rank) (max_over_time(astro_train_steps_total{{job_id="{job}"}}[10m]))')
    assert {s["metric"]["rank"] for s in steps} == {"0", "1"}
    assert all(float(s["value"][1]) == 4 for s in steps)
    assert promql(stack, f'max_over_time(astro_train_samples_per_second{{job_id="{job}"}}[10m]) > 0')
    inc = incident_for(stack, job)
    assert inc is None, (inc["root_cause"], inc.get("alerts"), inc.get("title"))


def test_astrocode_serves_and_counts_every_request_it_was_sent(settings: Settings, chains: Chains) -> None:
    stack, jobs = chains.stack, chains.jobs
    job = jobs["serve"]
    wait_until_ended(settings, job)
    assert job_state(settings, job) == "COMPLETED"
    log = (chains.out / f"astrocode-serve-{job}.out").read_text()
    load = json.loads(log.split("astrocode: load ", 1)[1].splitlines()[0])
    assert load["sent"] >= 1 and load["ok"] == load["sent"]
    done = promql(stack, f'sum(max_over_time(vllm:request_success_total{{job_id="{job}"}}[10m]))')
    assert float(done[0]["value"][1]) == load["sent"]
    inc = incident_for(stack, job)
    assert inc is None, (inc["root_cause"], inc.get("alerts"), inc.get("title"))


def test_astrocode_overload_raises_the_inference_alert_and_is_diagnosed(settings: Settings, chains: Chains) -> None:
    stack, jobs = chains.stack, chains.jobs
    job = jobs["overload"]
    deadline = time.monotonic() + DEADLINE
    while (inc := incident_for(stack, job)) is None and time.monotonic() < deadline:
        time.sleep(1)
    assert inc is not None, f"no incident for the overloaded server (job {job}) within {DEADLINE:.0f}s"
    detail = httpx.get(f"{stack.base}/api/v1/incidents/{inc['id']}", headers=stack.headers).json()
    assert detail["root_cause"] == "inference_overload", detail["diagnosis"]
    assert {a["alertname"] for a in detail["alerts"]} <= {"InferenceQueueGrowing", "InferenceTTFTHigh",
                                                          "InferenceKVCacheSaturated"}  # fmt: skip
    assert detail["culprit"]["job"] == job and detail["culprit"]["node"] == settings.slurm.node_name
