from __future__ import annotations

import json
from pathlib import Path

from analyzer.rca.render import MAX_CHARS, render
from hpcmind.contract import parse_bundle

ROOT = Path(__file__).resolve().parents[2]


def _real(i: int) -> dict:
    return json.loads((ROOT / "bench/data/real-dev.jsonl").read_text().splitlines()[i])["bundle"]


def _xid_bundle(noise: int) -> dict:
    logs = [{"source": "job/77", "line": f"step={i} loss=2.{i % 10} step_time=0.5"} for i in range(noise)]
    logs.insert(
        noise // 2,
        {"source": "node/gpu-a01/kernel", "line": "NVRM: Xid (PCI:0000:3b:00): 79, pid=1, GPU has fallen off the bus."},
    )
    return {
        "alert": {"labels": {"alertname": "GPUXidError", "Hostname": "gpu-a01", "gpu": "3"}},
        "job": {"id": "77", "state": "FAILED", "exit_code": "1:0", "nodes": ["gpu-a01"]},
        "logs": logs,
        "metrics": [
            {
                "name": "DCGM_FI_DEV_GPU_UTIL",
                "labels": {"Hostname": "gpu-a01", "gpu": "3"},
                "values": [[float(t), 95.0 if t < 300 else 0.0] for t in range(0, 600, 15)],
            },
        ],
    }


def test_render_is_deterministic_and_within_budget() -> None:
    for i in range(5):
        b = parse_bundle(_real(i))
        assert render(b) == render(b)
        assert len(render(b)) <= MAX_CHARS
    assert len(render(parse_bundle(_xid_bundle(5000)))) <= MAX_CHARS


def test_known_error_line_ranks_first_among_thousands_of_progress_lines() -> None:
    text = render(parse_bundle(_xid_bundle(3000)))
    logs = text.split("LOGS", 1)[1].splitlines()
    assert "Xid (PCI:0000:3b:00): 79" in logs[1]
    # repeated progress lines collapse into one template with a count
    assert sum("step=" in ln for ln in logs) == 1 and "[x3000]" in text


def test_metric_anomaly_is_summarised_with_where_and_when() -> None:
    text = render(parse_bundle(_xid_bundle(10)))
    line = next(ln for ln in text.splitlines() if ln.startswith("- DCGM_FI_DEV_GPU_UTIL"))
    assert "gpu-a01" in line and "gpu3" in line and "95 -> 0" in line and "00:05:00" in line


def test_alert_and_job_facts_come_first() -> None:
    lines = render(parse_bundle(_xid_bundle(10))).splitlines()
    assert lines[0].startswith("ALERT GPUXidError") and "gpu=3" in lines[0]
    assert lines[1].startswith("JOB 77") and "state=FAILED" in lines[1]
