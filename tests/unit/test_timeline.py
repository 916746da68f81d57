"""The incident timeline: every diagnosis with what it changed, between the alerts it read."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from analyzer.app import create_app
from analyzer.store import MIGRATIONS, Store, diagnoses, incidents, make_engine, metadata, schema_version
from analyzer.timeline import changes, diagnosis_events
from tests.unit.test_analyzer_app import HANG, XID, H, make_settings, payload, wait_for

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def test_each_diagnosis_says_what_it_changed() -> None:
    rows = [
        {"at": T0, "root_cause": "gpu_oom", "confidence": 0.8, "node": "n1", "gpu": "0", "job": "7", "alerts": 1},
        {"at": T0, "root_cause": "gpu_oom", "confidence": 0.9, "node": "n1", "gpu": "0", "job": "7", "alerts": 2},
        {"at": T0, "root_cause": "host_oom", "confidence": 0.7, "node": "n2", "gpu": None, "job": "7", "alerts": 3},
    ]
    ev = diagnosis_events(rows, iso)
    assert ev[0]["event"] == "diagnosed gpu_oom (0.80) — n1, GPU 0, job 7 (from 1 alert)" and ev[0]["changes"] == []
    assert ev[1]["event"].startswith("diagnosis unchanged: gpu_oom (0.90)") and ev[1]["changes"] == []
    assert ev[2]["event"].startswith("re-diagnosed host_oom (0.70) — n2, job 7: root cause gpu_oom → host_oom")
    assert "node n1 → n2" in ev[2]["event"] and "gpu 0 → —" in ev[2]["event"]
    assert [c["field"] for c in ev[2]["changes"]] == ["root_cause", "node", "gpu"]
    assert changes(None, rows[0]) == [] and changes(rows[0], {**rows[0], "gpu": ""})[0]["to"] == ""


def test_a_joining_alert_adds_a_diagnosis_to_the_timeline_and_page(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as c:
        c.post("/api/v1/alertmanager", json=payload(XID), headers=H)
        iid = wait_for(
            lambda: [i["id"] for i in c.get("/api/v1/incidents", headers=H).json()["items"] if i["root_cause"]]
        )[0]
        c.post("/api/v1/alertmanager", json=payload(XID, HANG), headers=H)

        def two() -> list[dict[str, object]] | None:
            d = c.get(f"/api/v1/incidents/{iid}", headers=H).json()
            got = [t for t in d["timeline"] if t["kind"] == "diagnosis"]
            return got if len(got) == 2 and not d["diagnosis_pending"] else None

        ds = wait_for(two, timeout=60)
        page = c.get(f"/incidents/{iid}", headers=H).text
    assert ds[0]["event"].startswith("diagnosed gpu_hardware_fault") and "(from 1 alert)" in str(ds[0]["event"])
    assert "(from 2 alerts)" in str(ds[1]["event"]) and ds[1]["root_cause"] == "gpu_hardware_fault"
    assert ds[0]["culprit"] == {"node": "gpu-a012", "gpu": "3", "job": "4211"} and ds[0]["model"]
    assert page.count('<li class="diagnosis">') == 2 and "diagnosed gpu_hardware_fault" in page


def test_a_store_diagnosed_before_the_history_existed_starts_it_with_the_latest(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    eng = make_engine(url)
    with eng.begin() as conn:  # a store as version 5 left it
        metadata.create_all(conn, tables=[schema_version])
        for version, step in MIGRATIONS[:5]:
            step(conn)
            conn.execute(schema_version.insert().values(version=version, applied_at=T0))
        conn.execute(
            incidents.insert().values(
                cluster="c1", state="open", onset=T0, root_cause="nvlink_error", confidence=0.9, node="n1",
                entities={"nodes": ["n1"], "jobs": []}, diagnosis={"model": "hpcmind-rca"}, revision=1,
                diagnosed_revision=1, created_at=T0, updated_at=T0,
            )
        )  # fmt: skip
        conn.execute(
            incidents.insert().values(
                cluster="c1", state="open", onset=T0, entities={"nodes": [], "jobs": []}, revision=1,
                created_at=T0, updated_at=T0,
            )
        )  # fmt: skip
    eng.dispose()
    store = Store(url)
    try:
        with store.tx() as conn:
            rows = conn.execute(select(diagnoses)).all()
        assert store.version == MIGRATIONS[-1][0]
        assert [(r.incident_id, r.root_cause, r.model, r.node) for r in rows] == [
            (1, "nvlink_error", "hpcmind-rca", "n1")
        ]
    finally:
        store.close()
