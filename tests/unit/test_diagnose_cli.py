from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli

XID79 = {
    "logs": [
        {
            "source": "node/gpu-a012/kernel",
            "line": "NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
        }
    ],
    "job": {"id": "4211", "state": "FAILED"},
}


def test_json_prints_exactly_one_diagnosis(tmp_path: Path) -> None:
    f = tmp_path / "b.json"
    f.write_text(json.dumps(XID79))
    res = run_cli("diagnose", str(f), "--json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["root_cause"] == "gpu_hardware_fault"
    assert d["culprit"] == {"node": "gpu-a012", "gpu": "PCI:0000:3b:00", "job": "4211"}
    assert d["evidence"][0].startswith("node/gpu-a012/kernel: NVRM: Xid")
    assert set(d) >= {
        "root_cause",
        "confidence",
        "culprit",
        "summary",
        "explanation",
        "remediation",
        "evidence",
        "alternatives",
        "model",
        "latency_ms",
    }


def test_stdin_and_human_report() -> None:
    res = run_cli("diagnose", stdin=json.dumps(XID79))
    assert res.returncode == 0
    assert "root cause : gpu_hardware_fault" in res.stdout
    assert "Drain gpu-a012" in res.stdout


def test_unknown_is_exit_0() -> None:
    res = run_cli("diagnose", "-", "--json", stdin=json.dumps({"logs": [{"line": "all good"}]}))
    assert res.returncode == 0
    assert json.loads(res.stdout)["root_cause"] == "unknown"
    assert "culprit" in json.loads(res.stdout)


def test_malformed_bundle_exit_2_names_field_prints_nothing() -> None:
    res = run_cli("diagnose", "--json", stdin=json.dumps({"logs": [{"source": "kernel"}]}))
    assert res.returncode == 2
    assert res.stdout == ""
    assert "logs[0].line" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_missing_file_exit_2() -> None:
    res = run_cli("diagnose", "/nonexistent/bundle.json", "--json")
    assert res.returncode == 2
    assert "/nonexistent/bundle.json" in res.stderr


def test_batch_keeps_order_and_reports_bad_lines(tmp_path: Path) -> None:
    lines = [json.dumps(XID79), "{broken", json.dumps({"job": {"id": "7", "state": "TIMEOUT"}}), json.dumps({})]
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(lines) + "\n")
    res = run_cli("diagnose", "--batch", str(f))
    assert res.returncode == 2
    out = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(out) == 4
    assert out[0]["root_cause"] == "gpu_hardware_fault"
    assert out[1]["line"] == 2 and "invalid JSON" in out[1]["error"]
    assert out[2]["root_cause"] == "walltime_exceeded"
    assert out[3]["line"] == 4 and "bundle" in out[3]["error"]


def test_batch_all_good_exit_0() -> None:
    res = run_cli("diagnose", "--batch", "-", stdin=json.dumps(XID79) + "\n" + json.dumps(XID79) + "\n")
    assert res.returncode == 0
    assert len(res.stdout.splitlines()) == 2


def test_bench_rca_real_writes_results(tmp_path: Path) -> None:
    res = run_cli(
        "bench", "rca", "--real", "bench/data/real-dev.jsonl", "--engines", "signatures", "--out", str(tmp_path)
    )
    assert res.returncode == 0, res.stderr
    result = json.loads((tmp_path / "rca_real.json").read_text())["signatures"]
    assert result["n"] == 27 and 0 <= result["top1_accuracy"] <= 1
    assert len(result["incidents"]) == 27 and result["latency_ms"]["p95"] >= result["latency_ms"]["p50"]
    assert (tmp_path / "rca_real.md").read_text().startswith("# Root-cause diagnosis on real-dev.jsonl")
    assert (tmp_path / "rca_real_confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_rca_unknown_engine(tmp_path: Path) -> None:
    res = run_cli("bench", "rca", "--real", "bench/data/real-dev.jsonl", "--engines", "gpt9", "--out", str(tmp_path))
    assert res.returncode == 2 and "--engines: unknown gpt9" in res.stderr


def test_bench_rca_bad_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text('{"root_cause": "not_a_cause", "bundle": {}}\n')
    res = run_cli("bench", "rca", "--real", str(f), "--out", str(tmp_path))
    assert res.returncode == 2
    assert "bad.jsonl:1" in res.stderr
