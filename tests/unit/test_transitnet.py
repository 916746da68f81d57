"""TransitNet's data, model and BLS baseline (the training job and Slurm runs are tested with the workloads)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from astro_workloads.transitnet import bls
from astro_workloads.transitnet.lightcurves import N_POINTS, Planet, _small_planet, dataset, transit_model
from astro_workloads.transitnet.model import build, to_input
from tests.conftest import run_cli


def test_dataset_is_deterministic_with_gaps_and_balanced() -> None:
    _, x, y = dataset(40, seed=3)
    _, x2, y2 = dataset(40, seed=3)
    assert x.shape == (40, N_POINTS) and np.array_equal(np.isnan(x), np.isnan(x2))
    assert np.allclose(np.nan_to_num(x), np.nan_to_num(x2)) and (y == y2).all()
    assert np.isnan(x).any(axis=1).all()  # every sector has its downlink gap
    assert 10 < y.sum() < 30
    assert not np.allclose(np.nan_to_num(x), np.nan_to_num(dataset(40, seed=4)[1]))


def test_limb_darkened_transit_has_the_requested_depth_and_matches_the_fallback() -> None:
    t = np.arange(N_POINTS) * (20 / 1440)
    p = Planet(period=3.0, t0=1.0, depth_ppm=2000, duration_h=2.5, impact=0.2)
    f = transit_model(t, p, 0.4, 0.2)
    assert abs((1 - f.min()) * 1e6 - 2000) < 400
    in_transit = f < 1 - 1e-4
    # every transit in the sector is there: ~9 events of a 3-day planet in 27.4 days
    starts = np.flatnonzero(np.diff(in_transit.astype(int)) == 1)
    assert 8 <= len(starts) <= 10
    rp = np.sqrt(2000e-6 * (1 - 0.4 / 3 - 0.2 / 6))
    a = 4.206 * 3 ** (2 / 3)
    approx = _small_planet(t, p, rp, a, float(np.degrees(np.arccos(0.2 / a))), 0.4, 0.2)
    assert abs((1 - approx.min()) - (1 - f.min())) < 6e-4


def test_bls_sees_a_deep_transit_and_not_noise() -> None:
    t, x, y = dataset(12, seed=11, planet_fraction=0.5)
    s = bls.scores(t, x)
    assert s[y == 1].mean() > s[y == 0].mean()


def test_cnn_takes_flux_and_gap_mask() -> None:
    torch = pytest.importorskip("torch")
    _, x, _ = dataset(4, seed=5)
    inp = to_input(x)
    assert inp.shape == (4, 2, N_POINTS)
    assert ((inp[:, 1] == 0) == np.isnan(x)).all() and np.isfinite(inp).all()
    with torch.inference_mode():
        out = build().eval()(torch.from_numpy(inp))
    assert out.shape == (4,)


def test_metrics_endpoint_and_prometheus_target_file(tmp_path: Path) -> None:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from astro_workloads.transitnet.train import Metrics

    labels = {"job_id": "77", "rank": "0", "hostname": "node01", "workload": "transitnet"}
    m = Metrics(0, labels, tmp_path)
    m.loss.set(0.5)
    m.steps.inc()
    target = json.loads((tmp_path / "workloads-transitnet-77-0.json").read_text())
    assert target[0]["labels"] == labels and target[0]["targets"][0].endswith(f":{m.port}")
    fams = {f.name: f for f in text_string_to_metric_families(httpx.get(f"http://127.0.0.1:{m.port}/metrics").text)}
    for name in (
        "astro_train_step_seconds",
        "astro_train_data_wait_seconds",
        "astro_train_samples_per_second",
        "astro_train_loss",
        "astro_train_grad_norm",
        "astro_train_memory_bytes",
        "astro_train_steps",
    ):
        assert name in fams, name
    assert fams["astro_train_loss"].samples[0].value == 0.5 and fams["astro_train_loss"].samples[0].labels == labels
    m.close()
    assert not list(tmp_path.iterdir())


def test_ddp_smoke_run_checkpoints_and_resumes(tmp_path: Path) -> None:
    res = run_cli("workloads", "run", "transitnet", "--smoke", "--out", str(tmp_path), timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "world=2" in res.stdout and (tmp_path / "checkpoint.pt").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["world"] == 2
    res = run_cli("workloads", "run", "transitnet", "--smoke", "--out", str(tmp_path), timeout=300)
    assert res.returncode == 0 and "resumed from" in res.stdout


@pytest.mark.parametrize(
    ("fault", "says"),
    [("nan", "FloatingPointError: Loss is nan"), ("crash", "KeyError: 'warmup_steps'")],
)
def test_faults_fail_the_way_real_jobs_fail(tmp_path: Path, fault: str, says: str) -> None:
    res = run_cli("workloads", "run", "transitnet", "--smoke", "--fault", fault, "--out", str(tmp_path), timeout=300)
    assert res.returncode != 0
    assert says in res.stdout + res.stderr and "ChildFailedError" in res.stderr


def test_slow_data_starves_the_steps(tmp_path: Path) -> None:
    res = run_cli(
        "workloads", "run", "transitnet", "--smoke", "--fault", "slow-data", "--out", str(tmp_path), timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    shares = [int(m) for m in re.findall(r"waited for data (\d+)% of the time", res.stdout)]
    assert len(shares) == 2 and min(shares) > 50  # both ranks; TrainingInputStarved fires above 50 %
