"""TransitNet's data, model and BLS baseline (the training job and Slurm runs are tested with the workloads)."""

from __future__ import annotations

import numpy as np
import pytest

from astro_workloads.transitnet import bls
from astro_workloads.transitnet.lightcurves import N_POINTS, Planet, _small_planet, dataset, transit_model
from astro_workloads.transitnet.model import build, to_input


def test_dataset_is_deterministic_with_gaps_and_balanced() -> None:
    t, x, y = dataset(40, seed=3)
    t2, x2, y2 = dataset(40, seed=3)
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
