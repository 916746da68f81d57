"""Causes the bundle's own measurements rule out, whatever a model reads into its text.

The learned layer reads a rendering; a documented check reads the numbers. Where the numbers contradict a cause's
definition, the learned call is dropped: a dataloader bottleneck is the input pipeline dominating the step, so a
bundle whose step metrics (or the workload's own step lines) show data wait as a small share of every step is not
one, however much its slowdown alert looks like it.
"""

from __future__ import annotations

import math
import re

from hpcmind.contract import EvidenceBundle

from .metric_rules import data_wait_pairs

# below this share of the step in every sample, the input pipeline is not what slows the job (the signature rule
# names a bottleneck at >= 50%)
MAX_HEALTHY_SHARE = 0.2
_LOG_FORMS = (
    re.compile(r"step_time=(?P<step>\d+(?:\.\d+)?)\s+data_wait=(?P<wait>\d+(?:\.\d+)?)"),  # the astro workloads
    re.compile(r"\bTime\s+(?P<step>\d+(?:\.\d+)?)\s+\([\d.]+\)\s+Data\s+(?P<wait>\d+(?:\.\d+)?)"),  # pytorch/examples
)


def data_wait_share(bundle: EvidenceBundle) -> float | None:
    """The largest share of a step spent waiting for data, over every sample the bundle has; None without any."""
    shares: list[float] = []
    for _, s, step_series in data_wait_pairs(bundle.metrics):
        step = dict(step_series.values)
        shares += [w / step[t] for t, w in s.values if t in step and step[t] > 0 and math.isfinite(w / step[t])]
    for e in bundle.logs:
        for rx in _LOG_FORMS:
            m = rx.search(e.line)
            if m and float(m["step"]) > 0:
                shares.append(float(m["wait"]) / float(m["step"]))
    return max(shares) if shares else None


def ruled_out(bundle: EvidenceBundle) -> dict[str, str]:
    """cause -> why the bundle's numbers rule it out."""
    out = {}
    share = data_wait_share(bundle)
    if share is not None and share < MAX_HEALTHY_SHARE:
        out["dataloader_bottleneck"] = f"data wait is at most {share:.0%} of a step"
    return out
