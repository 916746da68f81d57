"""Fleet memory: a unit's history and the correlation rules (pure), then through the service's own store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from analyzer.alertmanager import AlertmanagerPayload
from analyzer.fleet.history import Event, apply, evaluate, rules, unit_summary, xid_bucket
from analyzer.rca import SignatureEngine
from analyzer.service import AnalyzerService
from analyzer.store import Store
from hpcmind.contract import Diagnosis
from hpcmind.settings import load_settings
from tests.unit.test_analyzer_app import alert, payload

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


def ev(
    i: int, cause: str, gpu: str = "3", job: str | None = None, xids: tuple[int, ...] = (), days: float = 0
) -> Event:
    return Event(i, T0 + timedelta(days=days), cause, "gpu-a012", gpu, job or f"j{i}", xids)


def test_the_catalogue_buckets_and_the_rules_load() -> None:
    assert (xid_bucket(13), xid_bucket(79), xid_bucket(999)) == ("RESTART_APP", "RESTART_BM", "")
    assert {r.id for r in rules()} >= {"gpu-app-xid-across-jobs", "gpu-hardware-repeat"}


def test_three_app_xids_on_one_gpu_under_three_jobs_is_the_gpu() -> None:
    past = [ev(1, "software_error", xids=(13,)), ev(2, "software_error", xids=(31,), days=2)]
    now = ev(3, "software_error", xids=(13,), days=3)
    (c,) = evaluate(now, past)
    assert c.rule.id == "gpu-app-xid-across-jobs" and (c.count, c.distinct) == (3, 3)
    assert c.message == "GPU 3 on gpu-a012: 3rd RESTART_APP Xid in 7 days across 3 jobs, the first on 2026-11-20 10:00"
    d = Diagnosis(root_cause="software_error", confidence=0.6, summary="Xid 13", explanation="", remediation=["Fix"],
                  evidence=["Xid 13"], model="m", latency_ms=1.0)  # fmt: skip
    got = apply(d, [c])
    assert got.root_cause == "gpu_hardware_fault" and got.alternatives[0].root_cause == "software_error"
    assert got.remediation[0].startswith("Drain the node") and got.confidence == 0.7
    assert got.evidence[0].startswith("history: GPU 3 on gpu-a012: 3rd")


def test_the_same_count_spread_over_gpus_jobs_or_time_is_not() -> None:
    spread = [ev(1, "software_error", gpu="0", xids=(13,)), ev(2, "software_error", gpu="1", xids=(13,))]
    assert evaluate(ev(3, "software_error", gpu="2", xids=(13,)), spread) == []
    one_job = [ev(1, "software_error", job="j", xids=(13,)), ev(2, "software_error", job="j", xids=(13,))]
    assert evaluate(ev(3, "software_error", job="j", xids=(13,)), one_job) == []  # the application, not the GPU
    old = [ev(1, "software_error", xids=(13,), days=-20), ev(2, "software_error", xids=(13,), days=-9)]
    assert evaluate(ev(3, "software_error", xids=(13,)), old) == []


def test_hardware_repeats_escalate_to_rma_and_the_page_summary() -> None:
    past = [ev(1, "gpu_memory_error", xids=(48,), days=-1), ev(2, "software_error", gpu="5", days=-2)]
    now = ev(3, "gpu_memory_error", xids=(48,))
    (c,) = evaluate(now, past)
    assert c.rule.escalate == "rma" and c.count == 2
    assert unit_summary(now, past) == [
        "GPU 3 on gpu-a012: 1 earlier incident in 30 days (gpu_memory_error ×1)",
        "gpu-a012: 2 earlier incidents in 30 days (gpu_memory_error ×1, software_error ×1)",
    ]


def test_the_service_remembers_and_re_attributes_the_third(tmp_path: Path) -> None:
    s = load_settings(analyzer={"prometheus_url": "http://127.0.0.1:9", "prometheus_timeout_s": 1.0})
    svc = AnalyzerService(s, Store(f"sqlite:///{tmp_path / 'f.db'}"), SignatureEngine())

    def xid13(day: int, gpu: str, job: str) -> int:
        a = alert("GPUXidError", {"Hostname": "gpu-a012", "gpu": gpu, "err_code": "13", "hpc_job": job,
                                  "job_id": job, "severity": "warning"}, f"x{day}{gpu}",
                  starts=f"2026-11-{20 + day}T10:00:00Z", causes="software_error")  # fmt: skip
        (iid,) = svc.process(svc.accept(AlertmanagerPayload.model_validate(payload(a))))
        return iid

    first = [xid13(d, "3", f"10{d}") for d in range(3)]
    causes = [svc.get_incident(i)["root_cause"] for i in first]
    assert causes[:2] == ["software_error"] * 2 and causes[2] == "gpu_hardware_fault", causes
    hist = svc.get_incident(first[2])["diagnosis"]["history"]
    assert [c["rule"] for c in hist["conclusions"]] == ["gpu-app-xid-across-jobs"]
    spread = [xid13(d + 4, str(d), f"20{d}") for d in range(3)]  # other GPUs of the node, later in the week
    assert {svc.get_incident(i)["root_cause"] for i in spread} == {"software_error"}
