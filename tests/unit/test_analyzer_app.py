"""The analyzer app in process (SQLite, no Prometheus reachable): webhook, correlation, API, Grafana outbox."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analyzer.alertmanager import AlertmanagerPayload
from analyzer.app import create_app
from hpcmind.settings import Settings, load_settings
from tests.standins.grafana import GrafanaStandIn

TOKEN = "t0ken"
H = {"Authorization": f"Bearer {TOKEN}"}


def make_settings(
    tmp: Path, grafana_url: str = "http://127.0.0.1:9", engine: str = "signatures", **analyzer: Any
) -> Settings:
    """An analyzer on a fresh SQLite store, nothing else reachable; the signature engine unless a test asks for the
    learned one (loading it on a background thread per app would outlive short tests)."""
    return load_settings(
        model={"engine": engine},
        analyzer={
            "api_token": TOKEN,
            "database_url": f"sqlite:///{tmp / 'a.db'}",
            "prometheus_url": "http://127.0.0.1:9",  # nothing listens: evidence is missing
            "grafana_url": grafana_url,
            "grafana_token": "testtoken",
            **analyzer,
        },
    )


def alert(
    name: str,
    labels: dict[str, str],
    fp: str,
    starts: str = "2026-11-21T10:00:00Z",
    status: str = "firing",
    summary: str = "",
    ends: str | None = None,
    causes: str = "",
) -> dict[str, Any]:
    a = {
        "status": status,
        "labels": {"alertname": name, "cluster": "c1", **labels},
        "annotations": {"summary": summary, "hpcmind_causes": causes},
        "startsAt": starts,
        "endsAt": ends or "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom/graph",
        "fingerprint": fp,
    }
    return a


def payload(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    return {
        "version": "4",
        "status": status,
        "receiver": "hpcmind-analyzer",
        "groupKey": '{}:{cluster="c1"}',
        "groupLabels": {"cluster": "c1"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://am",
        "truncatedAlerts": 0,
        "alerts": list(alerts),
    }


XID = alert(
    "GPUXidError",
    {
        "Hostname": "gpu-a012",
        "gpu": "3",
        "err_code": "79",
        "err_msg": "GPU has fallen off the bus",
        "hpc_job": "4211",
        "job_id": "4211",
        "severity": "critical",
    },
    "aaa1",
    summary="Xid 79 on GPU 3 of gpu-a012",
    causes="gpu_hardware_fault,gpu_memory_error",
)
HANG = alert(
    "JobGPUsIdle",
    {"hpc_job": "4211", "job_id": "4211", "severity": "critical"},
    "bbb2",
    starts="2026-11-21T10:01:00Z",
    causes="collective_hang",
)
FAILED = alert(
    "SlurmJobFailed",
    {
        "job_id": "4211",
        "name": "transitnet-train",
        "state": "FAILED",
        "nodes": "gpu-a012,gpu-a013",
        "exit_code": "1:0",
        "severity": "warning",
    },
    "ccc3",
    starts="2026-11-21T10:11:00Z",
)
OTHER = alert(
    "HostOOMKill",
    {"instance": "gpu-b001:9100", "severity": "warning"},
    "ddd4",
    summary="The OOM killer ran on gpu-b001:9100",
    causes="host_oom",
)


def wait_for(fn: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path))) as c:
        yield c


def incidents(c: TestClient, **params: Any) -> list[dict[str, Any]]:
    """Incidents that have been diagnosed (an incident exists a moment before its first diagnosis)."""
    items = c.get("/api/v1/incidents", params=params, headers=H).json()["items"]
    return [i for i in items if i["root_cause"] is not None]


def test_webhook_needs_the_bearer_token(client: TestClient) -> None:
    assert client.post("/api/v1/alertmanager", json=payload(XID)).status_code == 401
    assert (
        client.post("/api/v1/alertmanager", json=payload(XID), headers={"Authorization": "Bearer no"}).status_code
        == 401
    )
    assert client.get("/api/v1/incidents").status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"version": "4", "status": "firing", "alerts": []}, "alerts"),
        ({"version": "3", "status": "firing", "alerts": [XID]}, "version"),
        ({"version": "4", "status": "firing", "alerts": [{**XID, "startsAt": "yesterday"}]}, "startsAt"),
        ({"version": "4", "status": "firing", "alerts": [{**XID, "labels": {"gpu": "1"}}]}, "labels"),
    ],
)
def test_malformed_payload_is_422_naming_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    r = client.post("/api/v1/alertmanager", json=body, headers=H)
    assert r.status_code == 422
    assert field in str(r.json()["detail"][0]["loc"])


def test_same_webhook_five_times_makes_one_incident(client: TestClient) -> None:
    for _ in range(5):
        assert client.post("/api/v1/alertmanager", json=payload(XID), headers=H).status_code == 200
    items = wait_for(lambda: incidents(client))
    time.sleep(0.3)
    assert len(incidents(client)) == 1
    inc = items[0]
    assert inc["root_cause"] == "gpu_hardware_fault"
    assert inc["culprit"] == {"node": "gpu-a012", "gpu": "3", "job": "4211"}


def test_cascade_correlates_and_unrelated_alert_is_separate(client: TestClient) -> None:
    client.post("/api/v1/alertmanager", json=payload(XID), headers=H)
    client.post("/api/v1/alertmanager", json=payload(XID, HANG), headers=H)
    client.post("/api/v1/alertmanager", json=payload(XID, HANG, FAILED, OTHER), headers=H)
    wait_for(lambda: len(incidents(client)) == 2)
    time.sleep(0.3)
    items = {i["root_cause"]: i for i in incidents(client)}
    assert set(items) == {"gpu_hardware_fault", "host_oom"}
    detail = client.get(f"/api/v1/incidents/{items['gpu_hardware_fault']['id']}", headers=H).json()
    assert [a["alertname"] for a in detail["alerts"]] == ["GPUXidError", "JobGPUsIdle", "SlurmJobFailed"]
    assert [t["event"] for t in detail["timeline"]][:3] == [
        "GPUXidError firing",
        "JobGPUsIdle firing",
        "SlurmJobFailed firing",
    ]
    assert set(detail["entities"]["nodes"]) == {"gpu-a012", "gpu-a013"}


def test_jobs_on_a_shared_node_are_separate_unless_the_node_is_at_fault(client: TestClient) -> None:
    def job_alert(name: str, job: str, fp: str) -> dict[str, Any]:
        labels = {"job_id": job, "name": "transitnet-train", "nodes": "node01", "state": name}
        return alert(f"SlurmJob{name}", labels, fp, causes="host_oom")

    # two jobs sharing node01 fail for their own reasons: two incidents, not one
    client.post("/api/v1/alertmanager", json=payload(job_alert("OutOfMemory", "11", "j11")), headers=H)
    client.post("/api/v1/alertmanager", json=payload(job_alert("Failed", "12", "j12")), headers=H)
    wait_for(lambda: len(incidents(client)) == 2)
    # the node goes down: its node-scoped alert joins an open incident on node01, and a third job's failure
    # then joins that node-rooted incident (the node took the job with it)
    down = alert("NodeDown", {"instance": "node01"}, "n01", starts="2026-11-21T10:01:00Z")
    client.post("/api/v1/alertmanager", json=payload(down), headers=H)
    client.post("/api/v1/alertmanager", json=payload(job_alert("NodeFail", "13", "j13")), headers=H)
    time.sleep(0.5)
    items = incidents(client)
    assert len(items) == 2
    jobs = sorted(
        sorted(client.get(f"/api/v1/incidents/{i['id']}", headers=H).json()["entities"]["jobs"]) for i in items
    )
    assert jobs == [["11", "13"], ["12"]]


def test_resolved_alerts_close_the_incident(client: TestClient) -> None:
    client.post("/api/v1/alertmanager", json=payload(OTHER), headers=H)
    wait_for(lambda: incidents(client, state="open"))
    res = {**OTHER, "status": "resolved", "endsAt": "2026-11-21T10:20:00Z"}
    client.post("/api/v1/alertmanager", json=payload(res, status="resolved"), headers=H)
    inc = wait_for(lambda: incidents(client, state="resolved"))[0]
    assert inc["resolved_at"] == "2026-11-21T10:20:00Z"
    assert incidents(client, state="open") == []


def test_open_incidents_are_a_series_for_grafana_s_tables_until_they_resolve(client: TestClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def series() -> list[dict[str, str]]:
        fams = text_string_to_metric_families(client.get("/metrics").text)
        mine = [f for f in fams if f.name == "hpcmind_incident_open"]
        return [s.labels | {"value": str(s.value)} for f in mine for s in f.samples]

    assert series() == []
    client.post("/api/v1/alertmanager", json=payload(XID), headers=H)
    inc = wait_for(lambda: incidents(client, state="open"))[0]
    (s,) = wait_for(series)
    assert s["id"] == str(inc["id"]) and s["root_cause"] == inc["root_cause"] == "gpu_hardware_fault"
    assert s["node"] == "gpu-a012" and s["job"] == "4211" and float(s["value"]) == pytest.approx(inc["confidence"])
    res = {**XID, "status": "resolved", "endsAt": "2026-11-21T10:30:00Z"}
    client.post("/api/v1/alertmanager", json=payload(res, status="resolved"), headers=H)
    wait_for(lambda: incidents(client, state="resolved"))
    assert series() == []


def test_unseen_alert_without_prometheus_or_logs_says_what_was_missing(client: TestClient) -> None:
    odd = alert(
        "SiteGpuTrouble",
        {"hostname": "h100-017", "gpu": "6", "err_code": "48", "job_id": "991"},
        "eee5",
        summary="something is off",
    )
    client.post("/api/v1/alertmanager", json=payload(odd), headers=H)
    inc = wait_for(lambda: incidents(client))[0]
    d = client.get(f"/api/v1/incidents/{inc['id']}", headers=H).json()
    assert d["root_cause"] == "gpu_memory_error"
    assert d["culprit"] == {"node": "h100-017", "gpu": "6", "job": "991"}
    missing = " ".join(d["diagnosis"]["missing_evidence"])
    assert "gpu_activity (error)" in missing and "logs (no data)" in missing
    assert any(
        (i["status"] == "error" and "unreachable" in i["error"]) or "ConnectError" in i["error"] for i in d["evidence"]
    )


def test_logs_ingest_feeds_the_diagnosis(client: TestClient) -> None:
    lines = [
        {
            "id": "l1",
            "ts": "2026-11-21T09:59:58Z",
            "source": "node/gpu-c003/kernel",
            "line": "NVRM: Xid (PCI:0000:3b:00): 74, pid=1, name=python, NVLink: fatal error detected on link 3",
        },
        {"id": "l1", "ts": "2026-11-21T09:59:58Z", "source": "node/gpu-c003/kernel", "line": "duplicate id"},
    ]
    r = client.post("/api/v1/logs", json={"lines": lines}, headers=H)
    assert r.status_code == 200
    vague = alert("NodeTrouble", {"Hostname": "gpu-c003"}, "fff6")
    client.post("/api/v1/alertmanager", json=payload(vague), headers=H)
    inc = wait_for(lambda: incidents(client))[0]
    assert inc["root_cause"] == "nvlink_error"
    assert client.post("/api/v1/logs", json={"lines": [{"ts": "x", "line": "no id"}]}, headers=H).status_code == 422


def test_diagnose_api_and_bad_bundles(client: TestClient) -> None:
    r = client.post("/api/v1/diagnose", json={"job": {"id": "5", "state": "TIMEOUT"}}, headers=H)
    assert r.status_code == 200 and r.json()["root_cause"] == "walltime_exceeded"
    bad = client.post("/api/v1/diagnose", json={"logs": [{"source": "x"}]}, headers=H)
    assert bad.status_code == 422 and "line" in str(bad.json()["detail"][0]["loc"])
    assert client.post("/api/v1/diagnose", json={}, headers=H).status_code == 422


def test_feedback_validation(client: TestClient) -> None:
    client.post("/api/v1/alertmanager", json=payload(OTHER), headers=H)
    iid = wait_for(lambda: incidents(client))[0]["id"]
    ok = client.post(
        f"/api/v1/incidents/{iid}/feedback",
        json={"correct": False, "true_root_cause": "storage_io", "comment": "disk full"},
        headers=H,
    )
    assert ok.status_code == 200
    bad = client.post(
        f"/api/v1/incidents/{iid}/feedback", json={"correct": False, "true_root_cause": "aliens"}, headers=H
    )
    assert bad.status_code == 422 and "true_root_cause" in str(bad.json()["detail"])
    assert client.post("/api/v1/incidents/999/feedback", json={"correct": True}, headers=H).status_code == 404
    assert client.get(f"/api/v1/incidents/{iid}", headers=H).json()["feedback"][0]["true_root_cause"] == "storage_io"


def test_metrics_route_is_explicit(client: TestClient) -> None:
    client.post("/api/v1/alertmanager", json=payload(XID), headers=H)
    wait_for(lambda: incidents(client))
    r = client.get("/metrics", follow_redirects=False)
    assert r.status_code == 200
    assert 'hpcmind_webhook_requests_total{outcome="accepted"} 1.0' in r.text
    assert "hpcmind_diagnosis_latency_seconds_count 1.0" in r.text
    assert 'hpcmind_incidents_total{root_cause="gpu_hardware_fault"} 1.0' in r.text


async def _cancel(task: Any) -> None:
    task.cancel()


def test_queue_full_answers_503_with_retry_after(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, queue_size=1, workers=1))) as c:
        rt = c.app.state.runtime  # type: ignore[attr-defined]
        c.portal.call(_cancel, rt.tasks[0])  # the worker is busy elsewhere
        rt.queue.put_nowait(-1)  # and the only slot is taken
        r = c.post("/api/v1/alertmanager", json=payload(XID), headers=H)
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert rt.service.pending_payloads() == []  # nothing half-stored


def test_grafana_annotation_survives_an_outage(tmp_path: Path) -> None:
    g = GrafanaStandIn(token="testtoken")
    port = g.port
    g.httpd.server_close()  # Grafana is down at first
    with TestClient(create_app(make_settings(tmp_path, grafana_url=f"http://127.0.0.1:{port}"))) as c:
        c.post("/api/v1/alertmanager", json=payload(XID), headers=H)
        wait_for(lambda: incidents(c))
        time.sleep(1.5)
        assert "hpcmind_grafana_failures_total" in c.get("/metrics").text
        g = GrafanaStandIn(token="testtoken", port=port).start()  # Grafana comes back
        try:
            ann = wait_for(lambda: g.annotations, timeout=15)[0]
            assert {"hpcmind", "gpu_hardware_fault", "node:gpu-a012", "job:4211"} <= set(ann["tags"])
            assert "Drain gpu-a012" in ann["text"] and "/incidents/" in ann["text"]
            assert ann["time"] == 1795255200000  # the alert's onset
            assert all(x["auth"] == "Bearer testtoken" for x in g.log if x["path"].startswith("/api/annotations"))
            res = {**XID, "status": "resolved", "endsAt": "2026-11-21T10:30:00Z"}
            c.post("/api/v1/alertmanager", json=payload(res, status="resolved"), headers=H)
            wait_for(lambda: g.annotations[0]["timeEnd"] == 1795257000000, timeout=15)
            assert len(g.annotations) == 1
        finally:
            g.stop()


def test_incident_page_and_runbook(client: TestClient) -> None:
    client.post("/api/v1/alertmanager", json=payload(XID), headers=H)
    iid = wait_for(lambda: incidents(client))[0]["id"]
    page = client.get(f"/incidents/{iid}", headers=H)
    assert page.status_code == 200 and "gpu_hardware_fault" in page.text and "Drain gpu-a012" in page.text
    assert "drain the node" in client.get("/runbooks/gpu_hardware_fault", headers=H).text


def test_api_docs_load_nothing_from_a_cdn(client: TestClient) -> None:
    import re

    page = client.get("/docs", headers=H)
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", page.text)
    assets = [u for pair in urls for u in pair if u]
    assert assets and all(u.startswith("/") for u in assets), assets  # every asset from this server
    js = client.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert js.status_code == 200 and "SwaggerUIBundle" in js.text
    assert client.get("/static/swagger-ui/swagger-ui.css").status_code == 200
    assert client.get("/openapi.json", headers=H).json()["info"]["title"] == "HPCMind analyzer"


def test_a_payload_that_loses_the_last_queue_slot_while_being_stored_is_kept_and_processed(tmp_path: Path) -> None:
    """The full-queue check and the put are apart (the durable insert runs between): another request can take the
    last slot. The stored payload is then answered 200 and processed when the queue has room, never a 500."""
    with TestClient(create_app(make_settings(tmp_path, queue_size=1, workers=1))) as c:
        rt = c.app.state.runtime  # type: ignore[attr-defined]
        c.portal.call(_cancel, rt.tasks[0])
        real_accept = rt.service.accept

        def accept_while_another_request_takes_the_slot(p: Any) -> int:
            pid = real_accept(p)
            rt.queue.put_nowait(real_accept(AlertmanagerPayload.model_validate(payload(OTHER))))
            return int(pid)

        rt.service.accept = accept_while_another_request_takes_the_slot
        r = c.post("/api/v1/alertmanager", json=payload(XID), headers=H)
        assert r.status_code == 200, r.text
        assert list(rt.backlog) == [r.json()["payload"]]
        rt.tasks[0] = c.portal.call(_start_worker, rt)  # the worker is back: queue, then backlog
        causes = wait_for(lambda: sorted(i["root_cause"] for i in incidents(c)) if len(incidents(c)) == 2 else None)
        assert causes == ["gpu_hardware_fault", "host_oom"]
        assert not rt.backlog and rt.service.pending_payloads() == []


async def _start_worker(rt: Any) -> Any:
    import asyncio

    return asyncio.create_task(rt.worker(False))


def test_actions_api_refuses_while_off_and_validates_its_input(client: TestClient) -> None:
    got = client.get("/api/v1/actions", headers=H).json()
    assert got == {"mode": "off", "actions": []}
    r = client.post("/api/v1/actions", json={"kind": "drain", "target": "gpu-a012"}, headers=H)
    assert r.status_code == 409 and "HPCMIND_ACTIONS__MODE=off" in r.json()["detail"]
    bad = client.post("/api/v1/actions", json={"kind": "reboot", "target": "gpu-a012"}, headers=H)
    assert bad.status_code == 422 and "kind" in str(bad.json()["detail"])
    bad = client.post("/api/v1/actions", json={"kind": "drain", "target": "a b; rm -rf /"}, headers=H)
    assert bad.status_code == 422  # a target is a node name or job id: never shell or scontrol syntax
    assert client.post("/api/v1/actions/7/approve", headers=H).status_code == 404
    assert client.post("/api/v1/actions/7/approve").status_code == 401
