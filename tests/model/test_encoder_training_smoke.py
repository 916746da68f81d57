"""`hpcmind train encoder --smoke`: corpus → LoRA encoder → threshold → reload, for real on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("encoder-smoke")
    res = run_cli("train", "encoder", "--smoke", "--out", str(out), timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_smoke_writes_adapter_head_threshold_and_curve(smoke: Path) -> None:
    d = smoke / "encoder"
    for name in ("adapter/adapter_model.safetensors", "head.safetensors", "head.json", "loss.png", "train_log.jsonl"):
        assert (d / name).stat().st_size > 0, name
    meta = json.loads((d / "head.json").read_text())
    assert len(meta["labels"]) == 19 and "unknown" in meta["labels"]
    assert 0.2 <= meta["threshold"] <= 0.95
    assert meta["training"]["train_corpus"] > 0 and meta["training"]["val_corpus_heldout_templates"] > 0
    log = [json.loads(x) for x in (d / "train_log.jsonl").read_text().splitlines()]
    assert log and all(r["loss"] > 0 for r in log)


def test_smoke_encoder_reloads_and_gives_a_distribution(smoke: Path) -> None:
    from analyzer.rca.tuned_encoder import Classifier

    clf = Classifier.load(smoke)
    p = clf.proba(
        ["LOGS 1 lines\n> slurmstepd: error: *** JOB 12 ON n1 CANCELLED AT 2026-01-01T00:00:00 DUE TO TIME LIMIT ***"]
    )
    assert p.shape == (1, 19)
    assert abs(float(p.sum()) - 1.0) < 1e-4


def test_bad_arguments_are_one_line_errors() -> None:
    res = run_cli("train", "encoder", "--per-cause", "0")
    assert res.returncode == 2 and "--per-cause" in res.stderr
    res = run_cli("train", "encoder", "--max-false", "1.5")
    assert res.returncode == 2 and "--max-false" in res.stderr
