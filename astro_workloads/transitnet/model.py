"""TransitNet: a 1D CNN over a flattened light curve (flux and a gap mask as two channels).

Five conv blocks halve the length each time; global max and mean pooling make the score independent of
where (and how often) the transits fall; one logit says "transit".
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np


def build(width: int = 16) -> Any:
    import torch
    from torch import nn

    class TransitNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            chans = [2, width, width * 2, width * 4, width * 4, width * 8]
            blocks: list[nn.Module] = []
            for cin, cout in itertools.pairwise(chans):
                blocks += [nn.Conv1d(cin, cout, 7, padding=3), nn.BatchNorm1d(cout), nn.ReLU(), nn.MaxPool1d(2)]
            self.features = nn.Sequential(*blocks)
            self.head = nn.Linear(chans[-1] * 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.features(x)
            return self.head(torch.cat([h.amax(-1), h.mean(-1)], 1)).squeeze(-1)  # type: ignore[no-any-return]

    return TransitNet()


def to_input(flux: np.ndarray) -> np.ndarray:
    """[n, L] flattened flux with NaN gaps -> [n, 2, L]: flux scaled by its robust noise, and the gap mask."""
    ok = np.isfinite(flux)
    f = np.where(ok, flux, 0.0)
    med = np.nanmedian(np.where(ok, flux, np.nan), axis=1, keepdims=True)
    mad = np.nanmedian(np.abs(np.where(ok, flux, np.nan) - med), axis=1, keepdims=True) * 1.4826 + 1e-9
    x = np.where(ok, (f - med) / mad, 0.0)
    return np.stack([np.clip(x, -20, 20), ok.astype(np.float32)], 1).astype(np.float32)
