"""`hpcmind train rca --smoke`: the whole training path for real, on a few simulated incidents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("smoke-artifacts")
    res = run_cli("train", "rca", "--smoke", "--out", str(out), env={"HPCMIND_TORCH_THREADS": "2"}, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res.stderr


def test_smoke_writes_adapter_head_weights_curve_and_summary(smoke: tuple[Path, str]) -> None:
    out, _ = smoke
    for name in (
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
        "encoder_head.npz",
        "combiner.json",
        "loss.png",
        "training.json",
        "train_log.jsonl",
    ):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "training.json").read_text())
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, summary["config"]["steps"] + 1))
    assert all(r["loss"] > 0 for r in log)
    assert len(summary["adapter_sha256"]) == 64


def test_smoke_adapter_reloads_and_scores_every_label(smoke: tuple[Path, str]) -> None:
    from analyzer.rca.lm import LoadedLM, labels
    from hpcmind.settings import Settings

    out, _ = smoke
    lm = LoadedLM.load(Settings().model.cache_dir, out / "adapter")
    scores = lm.score(
        "ALERT GPUXidError Hostname=gpu-a01 gpu=3\n> NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus."
    )
    assert set(scores) == set(labels())
    assert all(s < 0 for s in scores.values())  # log-likelihoods
    assert "adapter sha256:" in lm.name


def test_second_run_resumes_from_the_checkpoint(smoke: tuple[Path, str]) -> None:
    out, _ = smoke
    res = run_cli("train", "rca", "--smoke", "--out", str(out), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming from step 4" in res.stderr


def test_train_rca_without_dataset_names_the_missing_file(tmp_path: Path) -> None:
    res = run_cli("train", "rca", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "train.jsonl" in res.stderr and "hpcmind train dataset" in res.stderr
