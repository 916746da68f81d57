"""Synthetic light curves: stellar variability, red and white noise, gaps, limb-darkened transits.

A TESS-like sector (27.4 days) binned to 20 minutes (1,972 points). Transits come from `batman` (Mandel & Agol
with quadratic limb darkening) when it is installed, otherwise from the same model's small-planet
approximation written here. Parameter ranges follow the TESS/Kepler planet population: periods 0.8–13 days
(at least two transits per sector), depths 150–8,000 ppm, impact parameter 0–0.9, a/R* from Kepler's third
law for a Sun-like star. Everything is drawn from one seed: the same seed gives the same curves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SECTOR_DAYS = 27.4
CADENCE_DAYS = 20.0 / 1440.0
N_POINTS = int(SECTOR_DAYS / CADENCE_DAYS)
FLATTEN_WINDOW = 73  # points: ~1 day, much longer than any transit here


@dataclass(frozen=True)
class Planet:
    period: float  # days
    t0: float  # days
    depth_ppm: float
    duration_h: float
    impact: float


@dataclass(frozen=True)
class Curve:
    time: np.ndarray
    flux: np.ndarray  # relative flux, NaN in gaps
    planet: Planet | None


def _a_over_rs(period_days: float) -> float:
    # Kepler's third law, solar density: a/R* = 4.206 * P[d]^(2/3)
    return float(4.206 * period_days ** (2.0 / 3.0))


def transit_model(t: np.ndarray, p: Planet, u1: float, u2: float) -> np.ndarray:
    # the disc centre is brighter than average (limb darkening): central depth = rp^2 / (1 - u1/3 - u2/6)
    rp = float(np.sqrt(p.depth_ppm * 1e-6 * (1 - u1 / 3 - u2 / 6)))
    a = _a_over_rs(p.period)
    inc = float(np.degrees(np.arccos(min(p.impact / a, 0.999))))
    try:
        import batman

        params = batman.TransitParams()
        params.t0, params.per, params.rp, params.a, params.inc = p.t0, p.period, rp, a, inc
        params.ecc, params.w, params.u, params.limb_dark = 0.0, 90.0, [u1, u2], "quadratic"
        model = batman.TransitModel(params, t, supersample_factor=3, exp_time=CADENCE_DAYS)
        return np.asarray(model.light_curve(params))
    except ImportError:
        return _small_planet(t, p, rp, a, inc, u1, u2)


def _small_planet(t: np.ndarray, p: Planet, rp: float, a: float, inc: float, u1: float, u2: float) -> np.ndarray:
    """Mandel & Agol's small-planet limit: the occulted intensity times the covered area."""
    phase = ((t - p.t0 + 0.5 * p.period) % p.period - 0.5 * p.period) / p.period * 2 * np.pi
    x = a * np.sin(phase)
    y = a * np.cos(phase) * np.cos(np.radians(inc))
    z = np.sqrt(x**2 + y**2)
    mu = np.sqrt(np.clip(1 - z**2, 0, 1))
    intensity = 1 - u1 * (1 - mu) - u2 * (1 - mu) ** 2
    norm = 1 - u1 / 3 - u2 / 6
    covered = np.clip((1 + rp - z) / (2 * rp), 0, 1) * (np.cos(phase) > 0)
    return np.asarray(1 - rp**2 * intensity / norm * covered)


def draw(rng: np.random.Generator, with_planet: bool) -> Curve:
    t = np.arange(N_POINTS) * CADENCE_DAYS
    # stellar variability: a few quasi-periodic spot modulations
    flux = np.ones(N_POINTS)
    for _ in range(int(rng.integers(1, 4))):
        prot = rng.uniform(0.8, 20.0)
        amp = rng.uniform(0.0, 4e-3) / (1 + rng.integers(0, 2))
        envelope = 1 + 0.3 * np.sin(2 * np.pi * t / 13.0)  # spots grow and decay
        flux += amp * np.sin(2 * np.pi * t / prot + rng.uniform(0, 2 * np.pi)) * envelope
    # red noise (AR(1)) and white noise
    phi, sig_r = rng.uniform(0.85, 0.99), rng.uniform(30e-6, 400e-6)
    red = np.zeros(N_POINTS)
    eps = rng.normal(0, sig_r * np.sqrt(1 - phi**2), N_POINTS)
    for i in range(1, N_POINTS):
        red[i] = phi * red[i - 1] + eps[i]
    flux += red + rng.normal(0, rng.uniform(100e-6, 1500e-6), N_POINTS)
    planet = None
    if with_planet:
        period = float(np.exp(rng.uniform(np.log(0.8), np.log(13.0))))
        planet = Planet(
            period=period,
            t0=float(rng.uniform(0, period)),
            depth_ppm=float(np.exp(rng.uniform(np.log(150), np.log(8000)))),
            duration_h=0.0,
            impact=float(rng.uniform(0, 0.9)),
        )
        a = _a_over_rs(period)
        dur = period / np.pi * np.arcsin(np.sqrt((1 + 0.05) ** 2 - planet.impact**2) / a) * 24
        planet = Planet(planet.period, planet.t0, planet.depth_ppm, float(dur), planet.impact)
        flux *= transit_model(t, planet, float(rng.uniform(0.2, 0.6)), float(rng.uniform(0.0, 0.3)))
    # gaps: the mid-sector downlink (~1 day) and a few short ones
    mid = N_POINTS // 2 + int(rng.integers(-40, 40))
    flux[mid : mid + int(rng.integers(50, 90))] = np.nan
    for _ in range(int(rng.integers(0, 4))):
        s = int(rng.integers(0, N_POINTS - 30))
        flux[s : s + int(rng.integers(3, 30))] = np.nan
    return Curve(t, flux, planet)


def flatten(flux: np.ndarray, window: int = FLATTEN_WINDOW) -> np.ndarray:
    """Divide out the stellar variability with a running median (gaps ignored); the transit survives."""
    n = len(flux)
    half = window // 2
    padded = np.pad(flux, half, mode="edge")
    view = np.lib.stride_tricks.sliding_window_view(padded, window)[:n]
    # windows wholly inside a gap stay NaN; leaving them out of nanmedian avoids its all-NaN warning, which a
    # warnings filter could only hide process-wide (not thread-safe)
    some = np.isfinite(view).any(axis=1)
    trend = np.full(n, np.nan)
    trend[some] = np.nanmedian(view[some], axis=1)
    return np.asarray(flux / trend - 1.0)


def dataset(n: int, seed: int, planet_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time, flattened flux [n, N_POINTS] with NaN gaps, labels [n]) — half with a planet by default."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < planet_fraction).astype(np.int64)
    out = np.empty((n, N_POINTS), dtype=np.float32)
    for i in range(n):
        out[i] = flatten(draw(rng, bool(labels[i])).flux)
    return np.arange(N_POINTS) * CADENCE_DAYS, out, labels
