"""A stop between recording alerts and diagnosing them leaves nothing undiagnosed (SQLite store, real service)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analyzer.alertmanager import AlertmanagerPayload
from analyzer.rca import SignatureEngine
from analyzer.service import AnalyzerService
from analyzer.store import MIGRATIONS, Store, incidents
from hpcmind.settings import load_settings
from tests.unit.test_analyzer_app import XID, alert, payload

pytestmark = pytest.mark.unit


class Killed(BaseException):
    """Stands for the process dying: not an Exception, so nothing on the way catches it."""


def _service(db: Path) -> AnalyzerService:
    s = load_settings(analyzer={"prometheus_url": "http://127.0.0.1:9", "database_url": f"sqlite:///{db}"})
    return AnalyzerService(s, Store(s.analyzer.database_url), SignatureEngine())


def _storm(n: int) -> dict[str, Any]:
    """n Xid 79 alerts on n different nodes: n incidents."""
    return payload(
        *(
            alert(
                "GPUXidError",
                {"Hostname": f"gpu-{i:04d}", "gpu": "1", "err_code": "79", "err_msg": "GPU has fallen off the bus"},
                f"fp{i}",
                summary=f"Xid 79 on GPU 1 of gpu-{i:04d}",
                causes="gpu_hardware_fault",
            )
            for i in range(n)
        )
    )


def _die_after(svc: AnalyzerService, n: int) -> None:
    real = svc.diagnose_incident
    calls = {"n": 0}

    def diagnose(iid: int) -> Any:
        if calls["n"] == n:
            raise Killed
        calls["n"] += 1
        return real(iid)

    svc.diagnose_incident = diagnose  # type: ignore[method-assign]


def _states(svc: AnalyzerService) -> list[tuple[str | None, int, int]]:
    with svc.store.tx() as c:
        rows = c.execute(incidents.select().order_by(incidents.c.id)).all()
    return [(r.root_cause, r.revision, r.diagnosed_revision) for r in rows]


def test_a_payload_replayed_after_a_stop_mid_diagnosis_diagnoses_every_incident(tmp_path: Path) -> None:
    svc = _service(tmp_path / "a.db")
    pid = svc.accept(AlertmanagerPayload.model_validate(_storm(12)))
    _die_after(svc, 5)
    with pytest.raises(Killed):
        svc.process(pid)
    assert sum(rc is not None for rc, _, _ in _states(svc)) == 5  # 7 recorded, never diagnosed
    svc.store.close()

    again = _service(tmp_path / "a.db")  # the restart: the payload is still pending
    assert again.pending_payloads() == [pid]
    assert len(again.undiagnosed()) == 7
    again.process(pid)
    states = _states(again)
    assert len(states) == 12 and all(rc == "gpu_hardware_fault" for rc, _, _ in states)
    assert all(rev == done for _, rev, done in states)
    assert again.pending_payloads() == [] and again.undiagnosed() == []


def test_an_alert_joining_a_diagnosed_incident_is_rediagnosed_after_a_stop(tmp_path: Path) -> None:
    svc = _service(tmp_path / "b.db")
    svc.process(svc.accept(AlertmanagerPayload.model_validate(payload(XID))))
    [(cause, rev, done)] = _states(svc)
    assert cause == "gpu_hardware_fault" and rev == done == 1
    later = alert("JobGPUsIdle", {"hpc_job": "4211", "job_id": "4211"}, "bbb2", starts="2026-11-21T10:01:00Z")
    pid = svc.accept(AlertmanagerPayload.model_validate(payload(later)))
    _die_after(svc, 0)
    with pytest.raises(Killed):
        svc.process(pid)
    assert svc.undiagnosed() == [1]  # the new alert is in the incident, not in its diagnosis
    svc.store.close()

    again = _service(tmp_path / "b.db")
    assert again.diagnose_pending() == [1]  # what the analyzer's worker does first on start
    [(_, rev, done)] = _states(again)
    assert rev == done == 2
    again.process(pid)  # the payload itself is replayed too and changes nothing more
    assert len(_states(again)) == 1 and again.undiagnosed() == [] and again.pending_payloads() == []


def test_a_store_from_before_revisions_marks_undiagnosed_incidents_pending(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    svc = _service(db)
    svc.process(svc.accept(AlertmanagerPayload.model_validate(_storm(2))))
    with svc.store.tx() as c:  # as schema v2 left it: no revisions, one incident never diagnosed
        c.exec_driver_sql("UPDATE incidents SET root_cause = NULL WHERE id = 2")
        c.exec_driver_sql("DELETE FROM schema_version WHERE version >= 3")
        c.exec_driver_sql("DROP TABLE store_meta")
        c.exec_driver_sql("ALTER TABLE incidents DROP COLUMN revision")
        c.exec_driver_sql("ALTER TABLE incidents DROP COLUMN diagnosed_revision")
    svc.store.close()
    again = _service(db)
    assert again.store.version == MIGRATIONS[-1][0] and len(again.store.instance_id) == 16
    assert again.undiagnosed() == [2]


def test_a_pending_incident_whose_diagnosis_raises_is_recorded_failed_not_retried_by_every_sweep(
    tmp_path: Path,
) -> None:
    svc = _service(tmp_path / "d.db")
    pid = svc.accept(AlertmanagerPayload.model_validate(_storm(2)))
    _die_after(svc, 0)
    with pytest.raises(Killed):
        svc.process(pid)  # both recorded, neither diagnosed
    again = _service(tmp_path / "d.db")
    real = again._diagnose_incident

    def poisoned(iid: int) -> Any:
        if iid == 1:
            raise ValueError("evidence nobody can read")
        return real(iid)

    again._diagnose_incident = poisoned  # type: ignore[method-assign]
    assert again.diagnose_pending() == [2]  # the other one is diagnosed all the same
    assert again.undiagnosed() == []  # and the poisoned one is not pending for the next sweep
    rc, rev, done = _states(again)[0]
    assert rc == "unknown" and rev == done
    with again.store.tx() as c:
        summary = c.execute(incidents.select().where(incidents.c.id == 1)).one().summary
    assert "evidence nobody can read" in summary
