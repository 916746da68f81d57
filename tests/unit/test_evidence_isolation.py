"""A slow or dead Prometheus costs one incident its timeout, not every incident; a slow payload holds no other back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analyzer.app import create_app
from analyzer.bench_isolation import SlowPrometheus
from analyzer.evidence.breaker import Breaker
from analyzer.evidence.gather import gather_metrics
from analyzer.evidence.queries import QUERIES
from tests.unit.test_analyzer_app import OTHER, XID, H, make_settings, payload, wait_for

END = datetime(2026, 11, 21, 10, 5, tzinfo=UTC)
START = END - timedelta(minutes=10)


@pytest.fixture
def slow() -> Iterator[SlowPrometheus]:
    p = SlowPrometheus(delay=30)
    yield p
    p.close()


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_breaker_opens_on_failure_probes_once_after_the_cooldown_and_closes_on_success() -> None:
    clock = Clock()
    b = Breaker(cooldown=30, clock=clock)
    assert b.allow() == (True, "") and b.state == "closed"
    b.failure("ReadTimeout")
    ok, why = b.allow()
    assert not ok and "breaker open after ReadTimeout (retry in 30s)" in why and b.state == "open"
    clock.t = 31
    assert b.state == "half_open" and b.allow()[0] and not b.allow()[0]  # one probe, the rest wait for it
    b.failure("ConnectError")
    assert b.state == "open" and b.opened == 2
    clock.t = 62
    assert b.allow()[0]
    b.success()
    assert b.state == "closed" and b.allow()[0] and b.allow()[0]


def test_a_prometheus_that_times_out_costs_one_incident_its_timeout(slow: SlowPrometheus) -> None:
    b = Breaker(cooldown=60)
    _, first = gather_metrics(slow.url, ["gpu-a001"], ["42"], START, END, timeout=0.5, breaker=b, parallel=2)
    assert any("ReadTimeout" in i.error for i in first) and b.state == "open"
    sent = len(slow.queries)
    _, second = gather_metrics(slow.url, ["gpu-b002"], ["43"], START, END, timeout=0.5, breaker=b)
    assert len(slow.queries) == sent  # nothing more was sent to the slow Prometheus
    assert second and all(i.status == "error" and "breaker open after ReadTimeout" in i.error for i in second)
    assert {i.name for i in second} == {i.name for i in first}  # every query is accounted for


def test_the_evidence_budget_marks_what_it_cut_off() -> None:
    p = SlowPrometheus(delay=0.5)  # one at a time, 16 queries: 8 s of answers against a 3 s budget
    try:
        _, items = gather_metrics(p.url, ["n1", "n2"], ["7"], START, END, timeout=10, budget=3, parallel=1)
    finally:
        p.close()
    cut = [i for i in items if "evidence budget of 3s spent" in i.error]
    expected = sum(2 if q.scope == "node" else 1 for q in QUERIES)
    assert cut and all(i.status == "error" for i in cut) and len(cut) < expected  # some answered in time
    assert len({(i.name, i.query) for i in items}) == len(items) == expected  # one item per query, none lost


def test_a_payload_waiting_on_evidence_does_not_hold_the_next_one(tmp_path: Path) -> None:
    p = SlowPrometheus(hold="gpu-a012")  # the GPU incident's node queries hang until released
    settings = make_settings(tmp_path, prometheus_url=p.url, prometheus_timeout_s=120, evidence_budget_s=300, workers=2)
    try:
        with TestClient(create_app(settings)) as c:
            c.post("/api/v1/alertmanager", json=payload(XID), headers=H)
            wait_for(lambda: any("gpu-a012" in q for q in p.queries), timeout=60)
            c.post("/api/v1/alertmanager", json=payload(OTHER), headers=H)

            def diagnosed() -> dict[str, Any]:
                items = c.get("/api/v1/incidents", headers=H).json()["items"]
                return {i["root_cause"]: i for i in items if i["root_cause"]}

            got = wait_for(lambda: diagnosed() or None, timeout=60)
            assert set(got) == {"host_oom"}  # diagnosed while the first payload still waits on Prometheus
            p.release.set()
            got = wait_for(lambda: diagnosed() if len(diagnosed()) == 2 else None, timeout=120)
            assert set(got) == {"host_oom", "gpu_hardware_fault"}
            metrics = c.get("/metrics").text
    finally:
        p.close()
    assert "hpcmind_prometheus_breaker_open 0.0" in metrics
