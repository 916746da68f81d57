"""Drain, resume and requeue on the local Slurm in every actions mode, the breaker included (real slurmctld)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analyzer.actions.service import ActionError
from analyzer.alertmanager import AlertmanagerPayload
from analyzer.rca import SignatureEngine
from analyzer.service import AnalyzerService
from analyzer.store import Store
from hpcmind.services.catalog import Slurm
from hpcmind.settings import Settings, load_settings
from tests.unit.test_analyzer_app import alert, payload

PERMISSIVE = {"max_drain_share": 1.0, "keep_last_node": False}  # the local Slurm has one node


@pytest.fixture
def slurm_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, **Slurm(settings).env()}


@pytest.fixture
def job(settings: Settings, slurm_env: dict[str, str]) -> Iterator[str]:
    """A running batch job on the node, cancelled afterwards; the node is resumed whatever the test left."""
    out = Slurm(settings).dir / "jobs" / "actions-%j.out"
    res = subprocess.run(
        ["sbatch", "--parsable", "-J", "actions-it", "-o", str(out), "--wrap", "sleep 600"],
        capture_output=True, text=True, env=slurm_env, check=True,
    )  # fmt: skip
    jid = res.stdout.strip().split(";")[0]
    try:
        _wait(lambda: _job(slurm_env, jid).get("JobState") == "RUNNING", f"job {jid} running")
        yield jid
    finally:
        subprocess.run(["scancel", jid], env=slurm_env, check=False)
        node = settings.slurm.node_name
        if "DRAIN" in _node(slurm_env, node).get("State", ""):
            subprocess.run(["scontrol", "update", f"NodeName={node}", "State=RESUME"], env=slurm_env, check=False)


def _service(settings: Settings, db: Path, mode: str, **limits: Any) -> AnalyzerService:
    s = load_settings(
        analyzer={"prometheus_url": "http://127.0.0.1:9", "prometheus_timeout_s": 1.0},
        actions={"mode": mode, "slurm_conf": str(Slurm(settings).conf), **limits},
    )
    return AnalyzerService(s, Store(f"sqlite:///{db}"), SignatureEngine())


def _xid79(node: str, job: str) -> dict[str, Any]:
    return alert(
        "GPUXidError",
        {"Hostname": node, "gpu": "3", "err_code": "79", "err_msg": "GPU has fallen off the bus",
         "hpc_job": job, "job_id": job, "severity": "critical"},
        f"xid-{job}",
        causes="gpu_hardware_fault",
    )  # fmt: skip


def _diagnose(svc: AnalyzerService, node: str, job: str) -> dict[str, Any]:
    (iid,) = svc.process(svc.accept(AlertmanagerPayload.model_validate(payload(_xid79(node, job)))))
    inc = svc.get_incident(iid)
    assert inc["root_cause"] == "gpu_hardware_fault" and inc["culprit"]["node"] == node, inc["culprit"]
    return inc


def _show(env: dict[str, str], what: str, name: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "-o", "show", what, name], capture_output=True, text=True, env=env).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def _node(env: dict[str, str], node: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "node", node], capture_output=True, text=True, env=env).stdout
    fields = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
    reason = out.split("Reason=", 1)[1].splitlines()[0] if "Reason=" in out else ""
    return {**fields, "Reason": reason}


def _job(env: dict[str, str], job: str) -> dict[str, str]:
    return _show(env, "job", job)


def _wait(ok: Any, what: str, deadline: float = 120.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if ok():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _by_kind(inc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["kind"]: a for a in inc["actions"]}


def test_auto_drains_the_node_requeues_the_job_and_resume_restores_it(
    settings: Settings, tmp_path: Path, slurm_env: dict[str, str], job: str
) -> None:
    node = settings.slurm.node_name
    svc = _service(settings, tmp_path / "a.db", "auto", **PERMISSIVE)
    inc = _diagnose(svc, node, job)
    acts = _by_kind(inc)
    assert acts["drain"]["state"] == "done" and acts["requeue"]["state"] == "done", acts
    shown = _node(slurm_env, node)
    assert "DRAIN" in shown["State"], shown
    assert shown["Reason"].startswith(f"hpcmind incident {inc['id']}: gpu_hardware_fault"), shown["Reason"]
    # requeued: back in the queue (it cannot start again on the drained node)
    _wait(lambda: _job(slurm_env, job).get("JobState") in ("PENDING", "REQUEUED"), f"job {job} requeued")
    assert int(_job(slurm_env, job).get("Restarts", "0")) >= 1
    # a second diagnosis of the same incident does not act twice
    svc.diagnose_incident(inc["id"], force=True)
    assert len(svc.get_incident(inc["id"])["actions"]) == 2
    aid = svc.actions.request("resume", node, "operator")
    assert svc.actions.get(aid)["state"] == "done"
    assert "DRAIN" not in _node(slurm_env, node)["State"]
    assert svc.metrics.registry.get_sample_value("hpcmind_actions_total", {"kind": "drain", "outcome": "done"}) == 1


def test_dry_run_records_what_it_would_do_and_touches_nothing(
    settings: Settings, tmp_path: Path, slurm_env: dict[str, str], job: str
) -> None:
    node = settings.slurm.node_name
    svc = _service(settings, tmp_path / "a.db", "dry-run", **PERMISSIVE)
    acts = _by_kind(_diagnose(svc, node, job))
    assert {a["state"] for a in acts.values()} == {"dry_run"}
    assert acts["drain"]["detail"] == f"would run: drain {node}"
    assert acts["requeue"]["detail"] == f"would run: requeue job {job} after the drain of {node}"
    assert "DRAIN" not in _node(slurm_env, node)["State"]
    assert _job(slurm_env, job)["JobState"] == "RUNNING"


def test_approve_waits_for_an_operator_then_acts(
    settings: Settings, tmp_path: Path, slurm_env: dict[str, str], job: str
) -> None:
    node = settings.slurm.node_name
    svc = _service(settings, tmp_path / "a.db", "approve", **PERMISSIVE)
    acts = _by_kind(_diagnose(svc, node, job))
    assert {a["state"] for a in acts.values()} == {"awaiting_approval"}
    assert "DRAIN" not in _node(slurm_env, node)["State"]
    # requeue first: not yet, while the node still takes jobs; it keeps waiting
    with pytest.raises(ActionError, match="requeue after it is drained"):
        svc.actions.approve(acts["requeue"]["id"], "alice")
    assert svc.actions.get(acts["requeue"]["id"])["state"] == "awaiting_approval"
    got = svc.actions.approve(acts["drain"]["id"], "alice")
    assert (got["state"], got["decided_by"]) == ("done", "alice")
    assert "DRAIN" in _node(slurm_env, node)["State"]
    assert svc.actions.approve(acts["requeue"]["id"], "alice")["state"] == "done"
    _wait(lambda: _job(slurm_env, job).get("JobState") in ("PENDING", "REQUEUED"), f"job {job} requeued")
    with pytest.raises(ActionError, match="only an action awaiting approval"):
        svc.actions.approve(acts["drain"]["id"], "bob")
    assert svc.actions.get(svc.actions.request("resume", node, "alice"))["state"] == "done"


def test_the_breaker_refuses_and_says_why(
    settings: Settings, tmp_path: Path, slurm_env: dict[str, str], job: str
) -> None:
    node = settings.slurm.node_name
    # the defaults: at most 10 % of the nodes out of service, never a partition's last node
    acts = _by_kind(_diagnose(_service(settings, tmp_path / "a.db", "auto"), node, job))
    assert acts["drain"]["state"] == "refused" and acts["drain"]["detail"].startswith("breaker: 1 of 1 nodes")
    assert acts["requeue"]["state"] == "refused"
    # no more drains in the window than allowed
    acts = _by_kind(_diagnose(_service(settings, tmp_path / "b.db", "auto", max_drains=0, **PERMISSIVE), node, job))
    assert acts["drain"]["detail"] == "breaker: 0 drains already in the window (at most 0)"
    assert "DRAIN" not in _node(slurm_env, node)["State"] and _job(slurm_env, job)["JobState"] == "RUNNING"


def test_off_does_nothing_and_a_node_drained_by_someone_else_is_not_resumed(
    settings: Settings, tmp_path: Path, slurm_env: dict[str, str], job: str
) -> None:
    node = settings.slurm.node_name
    svc = _service(settings, tmp_path / "a.db", "off")
    assert _diagnose(svc, node, job)["actions"] == []
    with pytest.raises(ActionError, match="actions are off"):
        svc.actions.request("resume", node, "alice")
    subprocess.run(
        ["scontrol", "update", f"NodeName={node}", "State=DRAIN", "Reason=maintenance by bob"],
        env=slurm_env,
        check=True,
    )
    svc = _service(settings, tmp_path / "b.db", "auto", **PERMISSIVE)
    got = svc.actions.get(svc.actions.request("resume", node, "alice"))
    assert got["state"] == "refused" and "drained by someone else (maintenance by bob)" in got["detail"]
    assert "DRAIN" in _node(slurm_env, node)["State"]
