"""Combine the three root-cause opinions: signatures, encoder head and fine-tuned LM label scores.

Each gives a distribution over the 18 ids and `unknown`; the combination is a weighted sum of their log
probabilities, with weights chosen on the validation split (`hpcmind train rca`) and stored beside the adapter.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from hpcmind.taxonomy import UNKNOWN

from .findings import Finding
from .signature_engine import probabilities

FLOOR = 1e-4
SIGNATURE_GATE = 0.4


@dataclass(frozen=True)
class Weights:
    lm: float = 1.0
    encoder: float = 1.0
    signatures: float = 1.0
    # signatures first: when the documented signatures name a cause (their top is not `unknown` and at least this
    # sure), they decide; the learned models decide the rest. On real incidents the regexes, written from real
    # formats, are more precise than models trained on simulated text (bench/results/rca_real.md)
    gate: float | None = None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Weights:
        return cls(**json.loads(path.read_text()))


def signature_probs(findings: list[Finding], labels: Sequence[str]) -> np.ndarray:
    probs = probabilities(findings)
    p = np.array([probs.get(c, 0.0) for c in labels], dtype=np.float64)
    out: np.ndarray = p / max(float(p.sum()), 1e-12)
    return out


def softmax_scores(scores: dict[str, float], labels: Sequence[str]) -> np.ndarray:
    z = np.array([scores[c] for c in labels], dtype=np.float64)
    z -= z.max()
    p = np.exp(z)
    return p / p.sum()  # type: ignore[no-any-return]


def gated(w: Weights, labels: Sequence[str], sig: np.ndarray) -> bool:
    """True when the signatures name a cause surely enough to decide alone (the models need not run)."""
    if w.gate is None or w.signatures <= 0:
        return False
    top = int(sig.argmax())
    return labels[top] != UNKNOWN and float(sig[top]) >= w.gate


def combine(w: Weights, labels: Sequence[str], **probs: np.ndarray | None) -> np.ndarray:
    """Normalised distribution from the weighted log-probabilities of the opinions that are present."""
    sig = probs.get("signatures")
    if sig is not None and gated(w, labels, sig):
        return sig
    z = np.zeros(len(labels))
    for name, p in probs.items():
        if p is not None and getattr(w, name) > 0:
            z += getattr(w, name) * np.log(np.maximum(p, FLOOR))
    z -= z.max()
    out = np.exp(z)
    return out / out.sum()  # type: ignore[no-any-return]


def pick(probs: dict[str, float]) -> str:
    """The most probable id; a tie with `unknown` goes to the cause (a signature at the threshold names it)."""
    return max(probs, key=lambda c: (probs[c], c != UNKNOWN, c))


def fit_weights(
    labels: Sequence[str], y: Sequence[str], lm: np.ndarray, encoder: np.ndarray, signatures: np.ndarray
) -> tuple[Weights, float]:
    """Grid search on held-out examples: the most accurate weighting, ties to the simplest (smallest sum)."""
    grid = (0.0, 0.5, 1.0, 2.0)
    best: tuple[float, float, Weights] = (-1.0, 0.0, Weights())
    idx = np.array([list(labels).index(c) for c in y])
    for a, b, c in itertools.product(grid, grid, grid):
        if a == b == c == 0:
            continue
        w = Weights(a, b, c)
        z = np.zeros_like(lm)
        for wt, p in ((a, lm), (b, encoder), (c, signatures)):
            if wt:
                z += wt * np.log(np.maximum(p, FLOOR))
        acc = float((z.argmax(1) == idx).mean())
        if acc > best[0] + 1e-9 or (math.isclose(acc, best[0]) and -(a + b + c) > best[1]):
            best = (acc, -(a + b + c), w)
    return replace(best[2], gate=SIGNATURE_GATE), best[0]
