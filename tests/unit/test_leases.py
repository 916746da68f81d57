"""Leases between analyzer replicas on one store: who diagnoses, who drains, who sweeps what a dead one left."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from analyzer import app as app_module
from analyzer import leases
from analyzer.alertmanager import AlertmanagerPayload
from analyzer.app import create_app
from analyzer.rca import SignatureEngine
from analyzer.service import AnalyzerService
from analyzer.store import Store, now, payloads
from analyzer.store import leases as leases_table
from tests.unit.test_analyzer_app import XID, incidents, make_settings, payload, wait_for


def test_a_lease_is_held_renewed_by_its_owner_and_free_once_expired_or_released(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'l.db'}")
    assert leases.acquire(store, "outbox", "a", 30)
    assert not leases.acquire(store, "outbox", "b", 30)  # held
    assert leases.acquire(store, "outbox", "a", 30)  # renewed by its owner
    with store.tx() as c:  # a's process died and its lease ran out
        c.execute(update(leases_table).values(until=now() - timedelta(seconds=1)))
    assert leases.acquire(store, "outbox", "b", 30)
    leases.release(store, "outbox", "a")  # not a's any more: nothing happens
    assert not leases.acquire(store, "outbox", "a", 30)
    leases.release(store, "outbox", "b")
    assert leases.acquire(store, "outbox", "a", 30)


def test_an_incident_leased_by_another_replica_is_left_to_it_until_its_lease_runs_out(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    store = Store(s.analyzer.database_url)
    svc = AnalyzerService(s, store, SignatureEngine())
    pid = svc.accept(AlertmanagerPayload.model_validate(payload(XID)))
    assert leases.acquire(store, "diagnose:1", "other-replica:8080", 300)
    svc.process(pid)  # records the alert; the other replica holds the incident
    assert svc.undiagnosed() == [1]
    with store.tx() as c:  # the other replica was killed: its lease runs out
        c.execute(update(leases_table).values(until=now() - timedelta(seconds=1)))
    assert svc.diagnose_pending() == [1] and svc.undiagnosed() == []
    assert svc.diagnose_incident(1) is None  # nothing new: not diagnosed twice
    assert svc.diagnose_incident(1, force=True) is not None


def test_the_sweeper_finishes_a_payload_another_replica_accepted_and_never_processed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "SWEEP_S", 0.2)
    s = make_settings(tmp_path)
    with TestClient(create_app(s)) as c:
        # another replica on the same store answered 200 for this payload a while ago, then died before processing
        other = Store(s.analyzer.database_url)
        pid = AnalyzerService(s, other, SignatureEngine()).accept(AlertmanagerPayload.model_validate(payload(XID)))
        with other.tx() as tx:
            tx.execute(update(payloads).where(payloads.c.id == pid).values(received_at=now() - timedelta(minutes=5)))
        rt = c.app.state.runtime  # type: ignore[attr-defined]
        assert pid not in rt.in_hand  # only the sweep can find it
        (inc,) = wait_for(lambda: incidents(c), timeout=30)
        assert inc["root_cause"] == "gpu_hardware_fault"
        wait_for(lambda: rt.service.pending_payloads() == [] or None, timeout=30)
        other.close()
