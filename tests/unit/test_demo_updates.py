"""The demo prints what changes in an incident after its first diagnosis: a job joining, a re-diagnosis, resolution."""

from __future__ import annotations

import pytest

from analyzer.demo import _print_update, _shown

pytestmark = pytest.mark.unit


def test_updates_say_what_changed(capsys: pytest.CaptureFixture[str]) -> None:
    inc = {"id": 3, "root_cause": "gpu_hardware_fault", "confidence": 0.9, "culprit": {"node": "n1"}, "state": "open"}
    detail = {"alerts": [{"alertname": "GPUMissing"}]}
    before = _shown(inc, detail)
    assert _shown(inc, detail) == before
    later = {**inc, "culprit": {"node": "n1", "gpu": "3", "job": "42"}, "state": "resolved"}
    _print_update(later, {"alerts": [{"alertname": "GPUMissing"}, {"alertname": "SlurmJobFailed"}]}, before)
    out = capsys.readouterr().out
    assert out.startswith("  incident 3 update: ")
    assert "culprit now gpu 3, job 42, node n1" in out and "joined by SlurmJobFailed" in out and "resolved" in out
    _print_update({**inc, "root_cause": "software_error", "confidence": 0.6}, detail, before)
    assert "re-diagnosed gpu_hardware_fault -> software_error (60%)" in capsys.readouterr().out
