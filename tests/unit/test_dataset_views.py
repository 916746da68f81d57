"""Dataset views stay answerable: an alert-only view exists only where the alert alone names the cause."""

from __future__ import annotations

import random

from analyzer.training.dataset import Example, views_of


def example(causes: str) -> Example:
    bundle = {
        "alert": {"labels": {"alertname": "X", "job_id": "7"}, "annotations": {"hpcmind_causes": causes}},
        "job": {"id": "7", "state": "FAILED"},
        "logs": [{"source": "job/7", "line": "slurmstepd: error: Detected 1 oom-kill event(s) in StepId=7.batch"}],
    }
    return Example("s1/f0001", 1, "train", "full", "host_oom", {"job": "7"}, bundle)


def views(causes: str) -> set[str]:
    out: set[str] = set()
    for seed in range(40):
        out |= {v.view for v in views_of(random.Random(seed), example(causes), [], None, 2)}
    return out


def test_alert_only_view_needs_an_alert_that_names_one_cause() -> None:
    assert "alert_only" in views("host_oom")  # SlurmJobOutOfMemory: the alert is the diagnosis
    multi = views("software_error,gpu_oom,host_oom")  # SlurmJobFailed: the alert alone cannot tell
    assert "alert_only" not in multi and {"truncated", "noisy", "logs_only"} <= multi
