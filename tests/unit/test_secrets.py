"""Planted secrets never come back out: not in the API, the incident page, the Grafana annotation or the summary;
and annotation text carries no markup from labels or logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from analyzer.app import create_app
from analyzer.rca.masking import redact
from tests.standins.grafana import GrafanaStandIn
from tests.unit.test_analyzer_app import H, alert, incidents, make_settings, payload, wait_for

pytestmark = pytest.mark.unit

SECRETS = [
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "hunter2-correct-horse",
    "s3cr3t-in-a-url",
    "MIIEowIBAAKCAQEA0planted",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXBsYW50ZWQ",
]


def planted_lines(node: str) -> list[dict[str, str]]:
    xid = "NVRM: Xid (PCI:0000:3b:00): 79, pid=1, name=python, GPU has fallen off the bus. cmdline:"
    lines = [
        f"{xid} AWS_SECRET_ACCESS_KEY=x {SECRETS[0]}",
        f"{xid} git clone https://ci:{SECRETS[3]}@git.example/x",
        f"{xid} python --token {SECRETS[1]} password={SECRETS[2]}",
        f"{xid} curl -H 'Authorization: Bearer {SECRETS[5]}'",
        f"-----BEGIN RSA PRIVATE KEY----- {SECRETS[4]} -----END RSA PRIVATE KEY----- <script>alert(1)</script>",
    ]
    return [
        {"id": f"s{i}", "ts": f"2026-11-21T09:59:5{i}Z", "source": f"node/{node}/kernel", "line": ln}
        for i, ln in enumerate(lines)
    ]


def test_planted_secrets_appear_in_no_output(tmp_path: Path) -> None:
    g = GrafanaStandIn(token="testtoken").start()
    try:
        s = make_settings(tmp_path, grafana_url=f"http://127.0.0.1:{g.port}")
        with TestClient(create_app(s)) as c:
            assert c.post("/api/v1/logs", json={"lines": planted_lines("gpu-s01")}, headers=H).status_code == 200
            evil = alert(
                "NodeTrouble",
                {"Hostname": "gpu-s01", "note": "<img src=x onerror=alert(1)>"},
                "sec1",
                summary="<svg onload=alert(1)>",
            )
            c.post("/api/v1/alertmanager", json=payload(evil), headers=H)
            [inc] = wait_for(lambda: incidents(c))
            assert inc["root_cause"] == "gpu_hardware_fault"
            full = c.get(f"/api/v1/incidents/{inc['id']}", headers=H).json()
            page = c.get(f"/incidents/{inc['id']}", headers=H).text
            listing = c.get("/incidents", headers=H).text
            ann = wait_for(lambda: g.annotations, timeout=20)[0]
            outputs = {
                "diagnosis": json.dumps(full["diagnosis"]),
                "summary": full["summary"] or "",
                "page": page,
                "list": listing,
                "annotation": ann["text"],
            }
            assert "gpu-s01" in outputs["page"] and "<redacted>" in outputs["diagnosis"]
            for where, text in outputs.items():
                for secret in SECRETS:
                    assert secret not in text, f"{secret} in the {where}"
            for markup in ("<script>", "<img", "<svg"):
                assert markup not in ann["text"] and markup not in page
    finally:
        g.stop()


def test_redact_keeps_what_helps_and_drops_the_secret() -> None:
    assert redact("export WANDB_API_KEY=abc123") == "export WANDB_API_KEY=<redacted>"
    assert redact("https://bob:pw@host/x") == "https://<redacted>@host/x"
    line = "NCCL WARN NET/IB : mlx5_0:1 async fatal event: IBV_EVENT_PORT_ERR; max_tokens=512 prompt tokens: 30"
    assert redact(line) == line  # nothing secret, nothing touched
