"""`hpcmind bench rca` with the model engines side by side, on a few real incidents."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def test_side_by_side_scores_every_engine_on_the_same_incidents(tmp_path: Path) -> None:
    res = run_cli(
        "bench", "rca", "--real", "bench/data/real-dev.jsonl", "--limit", "4",
        "--engines", "signatures,base,finetuned,frozen,encoder,hpcmind", "--out", str(tmp_path), timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    results = json.loads((tmp_path / "rca_real.json").read_text())
    assert list(results) == ["signatures", "base", "finetuned", "frozen", "encoder", "hpcmind"]
    ids = [r["id"] for r in results["signatures"]["incidents"]]
    for name, r in results.items():
        assert r["n"] == 4 and [x["id"] for x in r["incidents"]] == ids, name
        assert r["latency_ms"]["p50"] > 0
    assert "LoRA" in results["finetuned"]["engine"] and "zero-shot" in results["base"]["engine"]
    assert "abstention" in results["encoder"]["engine"] and "frozen" in results["frozen"]["engine"]
    assert results["base"]["load_seconds"] > 0
    md = (tmp_path / "rca_real.md").read_text()
    # engines are columns, metrics rows
    assert "| metric | signatures | base | finetuned | frozen | encoder | hpcmind |" in md
    assert "| top-1 accuracy |" in md


def test_split_must_exist(tmp_path: Path) -> None:
    res = run_cli("bench", "rca", "--split", str(tmp_path / "none.jsonl"), "--out", str(tmp_path))
    assert res.returncode == 2 and "hpcmind train dataset" in res.stderr
