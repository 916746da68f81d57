"""Poison input is clamped at intake, never a failure after the 200: the good alerts and lines beside it land."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from analyzer.app import create_app
from analyzer.intake import MAX_LOG_LINE, clean, key
from analyzer.store import incident_alerts, log_lines
from tests.unit.test_analyzer_app import OTHER, XID, H, alert, incidents, make_settings, payload, wait_for

pytestmark = pytest.mark.unit


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path))) as c:
        yield c


def poison_alerts() -> list[dict]:
    nul = alert(
        "GPUXidError\x00",
        {"Hostname": "gpu-n\x00ul", "err_code": "79", "note": "a\x00b"},
        "nul1",
        summary="Xid 79 \x00 on a NUL host",
    )
    huge = alert(
        "HostOOMKill", {"instance": "h" * 70_000 + ":9100", "job_id": "9" * 5000}, "f" * 300, summary="x" * 100_000
    )
    long_name = alert("A" * 500, {"cluster": "c" * 500, "Hostname": "gpu-long"}, "long1")
    return [nul, huge, long_name]


def test_a_payload_with_poison_alerts_lands_whole(client: TestClient) -> None:
    r = client.post("/api/v1/alertmanager", json=payload(XID, *poison_alerts(), OTHER), headers=H)
    assert r.status_code == 200, r.text
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    wait_for(lambda: rt.service.pending_payloads() == [] or None, timeout=60)
    items = incidents(client)
    assert len(items) == 5 and rt.service.undiagnosed() == []  # each alert names different things
    assert {"gpu_hardware_fault", "host_oom"} <= {i["root_cause"] for i in items}
    with rt.store.tx() as c:
        rows = c.execute(
            select(incident_alerts.c.fingerprint, incident_alerts.c.alertname, incident_alerts.c.labels)
        ).all()
    assert len(rows) == 5
    assert all(len(fp) <= 64 and len(name) <= 200 for fp, name, _ in rows)
    assert not any("\x00" in str(lb) for _, _, lb in rows)
    # the same poison again is the same alerts again: deduplicated by the hashed fingerprint
    client.post("/api/v1/alertmanager", json=payload(*poison_alerts()), headers=H)
    wait_for(lambda: rt.service.pending_payloads() == [] or None)
    with rt.store.tx() as c:
        assert len(c.execute(select(incident_alerts.c.id)).all()) == 5


def test_a_log_batch_with_poison_lines_lands_whole(client: TestClient) -> None:
    lines = [
        {"id": "ok1", "ts": "2026-11-21T09:59:58Z", "source": "node/n1/kernel", "line": "a good line"},
        {"id": "nul", "ts": "2026-11-21T09:59:58Z", "source": "node/n1/kernel", "line": "NUL \x00 inside"},
        {"id": "src", "source": "s" * 1000, "line": "a long source"},
        {"id": "ts", "ts": "yesterday-ish", "line": "an unreadable time"},
        {"id": "i" * 500, "line": "a long id"},
        {"id": "big", "line": "x" * (MAX_LOG_LINE * 2)},
    ]
    r = client.post("/api/v1/logs", json={"lines": lines}, headers=H)
    assert r.status_code == 200 and r.json() == {"accepted": 6}
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with rt.store.tx() as c:
        got = {row.id: row for row in c.execute(select(log_lines)).all()}
    assert len(got) == 6
    assert got["nul"].line == "NUL \ufffd inside"
    assert len(got["src"].source) == 300 and len(got["big"].line) == MAX_LOG_LINE
    assert key("i" * 500) in got
    # structural errors still name the field
    bad = client.post("/api/v1/logs", json={"lines": [{"line": "no id"}]}, headers=H)
    assert bad.status_code == 422 and "id" in bad.text


def test_a_diagnosis_that_fails_is_recorded_not_retried_forever(client: TestClient) -> None:
    rt = client.app.state.runtime  # type: ignore[attr-defined]

    def broken(bundle: object) -> object:
        raise RuntimeError("engine exploded")

    rt.service.engine.diagnose = broken
    client.post("/api/v1/alertmanager", json=payload(XID), headers=H)
    [inc] = wait_for(lambda: incidents(client))
    assert inc["root_cause"] == "unknown" and "engine exploded" in inc["summary"]
    assert rt.service.pending_payloads() == [] and rt.service.undiagnosed() == []


def test_clean_and_key() -> None:
    assert clean("a\x00b", 10) == "a\ufffdb"
    cut = clean("y" * 100, 40)
    assert len(cut) == 40 and cut.endswith("…[+60 chars]")
    assert key("short") == "short" and len(key("k" * 100)) == 64 and key("k" * 100) == key("k" * 100)
