"""Every PromQL expression of every dashboard, evaluated against the real Prometheus fed by a simulator run."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest

from collector.guard import GuardedCollector
from collector.server import MetricsServer
from collector.sources.simulator import SimulatorSource
from grafana.dashboards import OUT, build
from hpcmind.settings import Settings
from simulator.scenario import parse_scenario

# Series that exist only when other parts run (the analyzer, the alert rules): empty here, with the reason.
LEGITIMATELY_EMPTY = {
    "hpcmind_incidents_total": "the analyzer is not scraped in this run",
    "hpcmind_diagnosis_latency_seconds_bucket": "the analyzer is not scraped in this run",
    "hpcmind_webhook_requests_total": "the analyzer is not scraped in this run",
    "hpcmind_grafana_outbox_size": "the analyzer is not scraped in this run",
    "hpcmind_grafana_failures_total": "the analyzer is not scraped in this run",
    "hpcmind_incident_open": "the analyzer is not scraped in this run",
    "hpcmind_slurm_node_gpus": "the Slurm source does not run here (the simulator has no slurmctld)",
    "ALERTS": "no alert rules are loaded in this run",
    "DCGM_FI_DEV_XID_ERRORS > 0": "no Xid happens in this healthy run",
    'DCGM_FI_DEV_XID_ERRORS{Hostname=~"$host"} > 0': "no Xid happens in this healthy run",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": "no fault in this healthy run",
}


def exprs() -> list[tuple[str, str, str]]:
    return [
        (name, p["title"], t["expr"]) for name, d in build().items() for p in d["panels"] for t in p.get("targets", [])
    ]


def test_checked_in_dashboards_match_the_source() -> None:
    for name, d in build().items():
        assert json.loads((OUT / f"{name}.json").read_text()) == d, f"run python -m grafana.dashboards ({name})"


def test_dashboards_load_in_grafana_provisioning_format() -> None:
    uids = set()
    for f in OUT.glob("*.json"):
        d = json.loads(f.read_text())
        assert d["uid"] and d["title"] and d["panels"], f.name
        uids.add(d["uid"])
        ann = d["annotations"]["list"]
        assert any(a.get("target", {}).get("tags") == ["hpcmind"] for a in ann), f"{f.name}: no HPCMind annotations"
        variables = {v["name"]: v for v in d["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        assert any(lk["type"] == "dashboards" and lk["keepTime"] and lk["includeVars"] for lk in d["links"]), f.name
        for p in d["panels"]:
            assert p["datasource"] and ("targets" in p or p["type"] == "annolist"), (f.name, p["title"])
            for t in p.get("targets", []):
                assert t["expr"] and t["datasource"]["uid"] == "${datasource}"
    assert len(uids) == 5


def test_tables_link_to_dashboards_that_exist_and_scoped_annotations_use_their_variable() -> None:
    dashboards = build()
    uids = {d["uid"] for d in dashboards.values()}
    linked = set()
    for name, d in dashboards.items():
        variables = {v["name"] for v in d["templating"]["list"]}
        for p in d["panels"]:
            for o in p["fieldConfig"]["overrides"]:
                for lk in (v for prop in o["properties"] if prop["id"] == "links" for v in prop["value"]):
                    m = re.match(r"/d/([\w-]+)\?.*var-(\w+)=", lk["url"])
                    if m:
                        assert m[1] in uids, (name, p["title"], lk["url"])
                        linked.add(m[1])
                    else:
                        assert lk["url"].startswith("${analyzer}/incidents/"), lk["url"]
        for a in d["annotations"]["list"][1:]:
            for tag in a["target"]["tags"]:
                if "$" in tag:
                    assert tag.split("$", 1)[1] in variables, (name, tag)
    assert {"hpcmind-node", "hpcmind-job"} <= linked  # cluster -> node -> job, job -> node
    node = dashboards["node-gpu-health"]["annotations"]["list"]
    assert [a["target"]["tags"] for a in node if a.get("enable") and "target" in a] == [["hpcmind", "node:$host"]]


# fresh series identities per run: a rerun must not be satisfied by the last run's samples
TAG = "dsh" + "".join(chr(ord("a") + int(c)) for c in f"{int(time.time()) % 1000:03d}")


@pytest.fixture(scope="module")
def fed(settings: Settings) -> Any:
    scen = parse_scenario(
        {
            "name": "dash",
            "seed": 9,
            "tick_seconds": 5,
            "cluster": {
                "name": "dash",
                "partitions": [{"name": "gpu", "nodes": 3, "node_prefix": TAG, "gpus_per_node": 4, "ib_hcas": 1}],
            },
            "workload": {
                "arrivals_per_hour": 0,
                "initial_utilisation": 0.9,
                "mix": {"training": 0.6, "inference": 0.4},
                "user_failure_rate": 0,
                "mean_runtime": "30h",
            },
            "faults": {"random": {"enabled": False, "confounders_per_hour": 0}},
        }
    )
    src = SimulatorSource(scen, speed=5, name="dash")
    srv = MetricsServer(GuardedCollector([src]).collect, port=0)
    srv.start()
    target = settings.services.run_dir / "prometheus" / "targets" / "dash.json"
    target.write_text(json.dumps([{"targets": [f"127.0.0.1:{srv.port}"]}]))
    src.start()
    base = f"http://127.0.0.1:{settings.prometheus.port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = httpx.get(
            base + "/api/v1/query", params={"query": f'count(rate(DCGM_FI_DEV_GPU_UTIL{{Hostname=~"{TAG}.*"}}[2m]))'}
        ).json()["data"]["result"]
        if r and float(r[0]["value"][1]) >= 12:
            break
        time.sleep(1)
    time.sleep(5)
    job = next(j for j in src.sim.jobs.values() if j.kind == "training")
    yield base, str(job.id)
    target.unlink(missing_ok=True)
    src.stop()
    srv.stop()


@pytest.mark.parametrize(
    ("dash", "title", "expr"), exprs(), ids=[f"{d}:{t}:{i}" for i, (d, t, _) in enumerate(exprs())]
)
def test_every_dashboard_query(dash: str, title: str, expr: str, fed: Any) -> None:
    base, job = fed
    q = expr.replace("$host", f"{TAG}.*").replace("$job", job)
    r = httpx.get(base + "/api/v1/query", params={"query": q})
    assert r.status_code == 200, f"{dash}/{title}: {r.text}"
    result = r.json()["data"]["result"]
    reason = next((why for key, why in LEGITIMATELY_EMPTY.items() if key in expr), None)
    if reason is None:
        assert result, f"{dash}/{title}: no data for {q}"
    else:
        assert re.search(r"\w", reason)
