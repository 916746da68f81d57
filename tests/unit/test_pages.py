"""The on-call pages: incident list with filters and counts, incident page, runbook; escaping; view helpers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from analyzer.app import create_app
from analyzer.pages.views import age, culprit_text, first_sign, incident_view
from hpcmind.settings import LinksSettings
from tests.unit.test_analyzer_app import OTHER, XID, H, alert, incidents, make_settings, payload, wait_for

pytestmark = pytest.mark.unit


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path))) as c:
        yield c


def _two_incidents(c: TestClient) -> list[dict]:
    c.post("/api/v1/alertmanager", json=payload(XID), headers=H)
    c.post("/api/v1/alertmanager", json=payload(OTHER), headers=H)
    return wait_for(lambda: (lambda xs: xs if len(xs) == 2 else None)(incidents(c)))


def test_the_list_shows_every_incident_open_first_with_counts_and_filters(client: TestClient) -> None:
    items = _two_incidents(client)
    home = client.get("/", headers=H, follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/incidents?state=open"
    page = client.get("/incidents", headers=H).text
    assert "GPU 3 on gpu-a012, job 4211" in page and "{'" not in page  # the culprit as words, not a dict
    assert "gpu_hardware_fault · 1" in page and "host_oom · 1" in page
    assert "2 incidents" in page
    ids = [int(x) for x in re.findall(r'<td><a href="/incidents/(\d+)">', page)]
    assert sorted(ids) == sorted(i["id"] for i in items)
    only = client.get("/incidents", params={"root_cause": "host_oom"}, headers=H).text
    assert "host_oom" in only and "gpu-a012" not in only and "1 incident." in only
    assert "No incidents match" in client.get("/incidents", params={"node": "nowhere"}, headers=H).text
    assert client.get("/incidents", params={"state": "bogus"}, headers=H).status_code == 422


def test_the_incident_page_reads_like_a_runbook_and_links_to_prometheus(client: TestClient) -> None:
    hw = next(i for i in _two_incidents(client) if i["root_cause"] == "gpu_hardware_fault")
    page = client.get(f"/incidents/{hw['id']}", headers=H).text
    assert "Incident" in page and "GPU 3 on gpu-a012" in page
    assert re.search(r"First: <strong>[^<]*gpu-a012", page)
    assert 'href="/runbooks/gpu_hardware_fault"' in page
    graphs = re.findall(r'href="(http://127\.0\.0\.1:9/graph\?[^"]+)"', page)
    assert graphs, "every metric query links to the Prometheus graph"
    expr = parse_qs(urlsplit(graphs[0].replace("&amp;", "&")).query)["g0.expr"][0]
    assert "gpu-a012" in expr or "4211" in expr
    grafana = re.findall(r'href="(http://127\.0\.0\.1:9/d/[^"]+)"', page)
    node_dash = next(u for u in grafana if "/d/hpcmind-node/" in u).replace("&amp;", "&")
    q = parse_qs(urlsplit(node_dash).query)
    assert q["var-host"] == ["gpu-a012"] and q["to"] == ["now"]
    assert int(q["from"][0]) == 1795255200000 - 30 * 60_000  # half an hour before the onset
    assert any("/d/hpcmind-job/" in u and "var-job=4211" in u for u in grafana)
    silence = re.search(r'href="(http://127\.0\.0\.1:19093/#/silences/new\?filter=[^"]+)"', page)
    assert silence, "the open alert can be silenced from the page"
    flt = parse_qs(urlsplit(silence[1].replace("#/", "")).query)["filter"][0]
    assert flt.startswith('{alertname="GPUXidError"') and 'Hostname="gpu-a012"' in flt and 'gpu="3"' in flt
    assert client.get("/incidents/999", headers=H).status_code == 404
    rb = client.get("/runbooks/gpu_hardware_fault", headers=H).text
    assert "/incidents?root_cause=gpu_hardware_fault" in rb
    assert "/incidents?state=open" in client.get("/runbooks/GPUXidError", headers=H).text  # an alert name


def test_pages_escape_what_they_quote(client: TestClient) -> None:
    evil = "<script>alert(1)</script>"
    lines = [
        {
            "id": "e1",
            "ts": "2026-11-21T09:59:58Z",
            "source": "node/gpu-x1/kernel",
            "line": f"NVRM: Xid (PCI:0000:3b:00): 79, pid=1, name={evil}, GPU has fallen off the bus.",
        }
    ]
    assert client.post("/api/v1/logs", json={"lines": lines}, headers=H).status_code == 200
    client.post("/api/v1/alertmanager", json=payload(alert("NodeTrouble", {"Hostname": "gpu-x1"}, "e1f")), headers=H)
    iid = wait_for(lambda: incidents(client))[0]["id"]
    page = client.get(f"/incidents/{iid}", headers=H).text
    assert evil not in page and "&lt;script&gt;" in page
    assert evil not in client.get(f"/runbooks/{evil}", headers=H).text


def test_view_helpers() -> None:
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert age("2026-11-21T11:57:00+00:00", now) == "3 min"
    assert age("2026-11-21T09:55:00Z", now) == "2 h 5 min"
    assert age("2026-11-18T12:00:00Z", now) == "3 d"
    assert culprit_text({"node": "gpu-a012", "gpu": "3", "job": "4211"}) == "GPU 3 on gpu-a012, job 4211"
    assert culprit_text({"job": "7"}) == "job 7" and culprit_text({}) == "—"
    ev = ["job/7: Traceback (most recent call last):", "job/7: RuntimeError: CUDA error: out of memory"]
    assert first_sign(ev) == ev[1]
    v = incident_view(
        {
            "id": 1,
            "state": "open",
            "root_cause": "gpu_oom",
            "onset": "2026-11-21T11:00:00Z",
            "diagnosis": {
                "remediation": ["Lower the batch size", "Lower the batch size", "Requeue job 7"],
                "alternatives": [{"root_cause": "host_oom", "confidence": 0.12}],
            },
        },
        LinksSettings(grafana="http://g", prometheus="http://prom:9090", alertmanager="http://am"),
        now,
    )
    assert v["remediation"] == ["Lower the batch size", "Requeue job 7"] and v["first_step"] == "Lower the batch size"
    assert v["alternatives"] == [{"root_cause": "host_oom", "confidence": "12%", "runbook": "/runbooks/host_oom"}]


def test_evidence_numbers_are_in_human_units() -> None:
    from analyzer.rca.units import celsius, human_bytes

    assert human_bytes(1.44e12) == "1.31 TiB" and human_bytes(2.2e9) == "2.05 GiB" and human_bytes(512) == "512 B"
    assert celsius(92.0) == "92 °C"


def test_links_never_carry_the_api_urls_credentials() -> None:
    from hpcmind.settings import load_settings

    s = load_settings(analyzer={"grafana_url": "http://admin:s3cret@grafana:3000"})
    assert s.links.grafana == "http://grafana:3000" and "s3cret" not in s.links.model_dump_json()
    assert load_settings(links={"grafana": "https://grafana.example"}).links.grafana == "https://grafana.example"


def test_feedback_buttons_post_with_the_pages_form_token(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    with TestClient(create_app(s)) as browser:
        hw = next(i for i in _two_incidents(browser) if i["root_cause"] == "gpu_hardware_fault")
        browser.post("/login", data={"token": s.analyzer.api_token.get_secret_value(), "next": "/"})
        page = browser.get(f"/incidents/{hw['id']}").text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert csrf and 'value="right"' in page and 'value="wrong"' in page
        url = f"/incidents/{hw['id']}/feedback"
        # a forged post from another site carries the cookie but not the page's token
        forged = browser.post(url, data={"verdict": "right"}, follow_redirects=False)
        assert forged.status_code == 403 and "form token" in forged.text
        bad = browser.post(url, data={"verdict": "wrong", "csrf": csrf[1]}, follow_redirects=False)
        assert bad.status_code == 422 and "true_root_cause" in bad.text
        ok = browser.post(
            url,
            data={
                "verdict": "wrong",
                "true_root_cause": "nvlink_error",
                "comment": "NVLink errors first",
                "csrf": csrf[1],
            },
            follow_redirects=False,
        )
        assert ok.status_code == 303 and ok.headers["location"].endswith("#feedback")
        shown = browser.get(f"/incidents/{hw['id']}").text
        assert "wrong, really <strong>nvlink_error</strong>: NVLink errors first" in shown
        fb = browser.get(f"/api/v1/incidents/{hw['id']}", headers=H).json()["feedback"]
        assert [(f["correct"], f["true_root_cause"]) for f in fb] == [(False, "nvlink_error")]
        browser.cookies.clear()
        # a bearer client has no ambient credential, so no form token is asked of it
        api = browser.post(url, data={"verdict": "right"}, headers=H, follow_redirects=False)
        assert api.status_code == 303
        assert (
            browser.post(url, data={"verdict": "right"}, follow_redirects=False).status_code == 401
        )  # no session at all
        assert browser.post("/incidents/999/feedback", data={"verdict": "right"}, headers=H).status_code == 404


def test_slurm_actions_and_history_on_the_page_only_an_admin_decides(tmp_path: Path) -> None:
    from hpcmind.settings import ActionsSettings

    s = make_settings(tmp_path, viewer_token="v1ewer")
    # approve mode, no Slurm on this machine's PATH for the test: the action waits, and cannot run
    s.actions = ActionsSettings(mode="approve", scontrol=str(tmp_path / "no-scontrol"), max_drain_share=1.0)
    with TestClient(create_app(s)) as browser:
        hw = next(i for i in _two_incidents(browser) if i["root_cause"] == "gpu_hardware_fault")
        (drain,) = [a for a in browser.get(f"/api/v1/incidents/{hw['id']}", headers=H).json()["actions"]
                    if a["kind"] == "drain"]  # fmt: skip
        assert drain["state"] == "awaiting_approval" and "cannot read the cluster" in drain["detail"]
        url = f"/incidents/{hw['id']}/actions/{drain['id']}"
        browser.post("/login", data={"token": "v1ewer", "next": "/"})
        page = browser.get(f"/incidents/{hw['id']}").text
        assert "Slurm actions" in page and f"drain <code>{drain['target']}</code>" in page and 'value="approve"' in page
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert csrf
        viewer = browser.post(url, data={"decision": "approve", "csrf": csrf[1]}, follow_redirects=False)
        assert viewer.status_code == 403 and "API token" in viewer.text
        browser.post("/login", data={"token": s.analyzer.api_token.get_secret_value(), "next": "/"})
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', browser.get(f"/incidents/{hw['id']}").text)
        assert csrf
        assert browser.post(url, data={"decision": "approve"}, follow_redirects=False).status_code == 403
        busy = browser.post(url, data={"decision": "approve", "csrf": csrf[1]}, follow_redirects=False)
        assert busy.status_code == 409 and "sinfo: not found" in busy.text  # it keeps waiting
        ok = browser.post(url, data={"decision": "reject", "csrf": csrf[1]}, follow_redirects=False)
        assert ok.status_code == 303 and ok.headers["location"].endswith("#actions")
        got = browser.get("/api/v1/actions", headers=H).json()
        assert got["mode"] == "approve" and {a["state"] for a in got["actions"] if a["id"] == drain["id"]} == {
            "rejected"
        }
        wrong = f"/incidents/{hw['id'] + 1000}/actions/{drain['id']}"
        assert browser.post(wrong, data={"decision": "reject"}, headers=H).status_code == 404
