from __future__ import annotations

import pytest

from hpcmind.contract import BundleError, parse_bundle, parse_bundle_text


def test_minimal_bundles() -> None:
    assert parse_bundle({"logs": [{"line": "x"}]}).logs[0].line == "x"
    assert parse_bundle({"alert": {"labels": {"alertname": "A", "gpu": 3}}}).alert.labels["gpu"] == "3"  # type: ignore[union-attr]
    assert parse_bundle({"job": {"id": 42, "state": "FAILED"}}).job.id == "42"  # type: ignore[union-attr]


def test_unknown_keys_ignored() -> None:
    b = parse_bundle({"logs": [{"line": "x", "pod": "p"}], "extra": 1})
    assert b.logs[0].source is None


def test_prometheus_string_values() -> None:
    b = parse_bundle({"metrics": [{"name": "m", "values": [[1, "97.5"], [2, "NaN"]]}]})
    assert b.metrics[0].values[0] == (1.0, 97.5)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "bundle"),
        ({"logs": None}, "bundle"),
        ([], "bundle"),
        ({"logs": [{"source": "kernel"}]}, "logs[0].line"),
        ({"logs": "not a list"}, "logs"),
        ({"metrics": [{"name": "x", "values": [[1]]}]}, "metrics[0].values[0]"),
        ({"job": {"nodes": 5}}, "job.nodes"),
    ],
)
def test_errors_name_the_field(data: object, field: str) -> None:
    with pytest.raises(BundleError) as exc:
        parse_bundle(data)
    assert str(exc.value).startswith(field), str(exc.value)


def test_invalid_json() -> None:
    with pytest.raises(BundleError, match="invalid JSON"):
        parse_bundle_text("{nope")


@pytest.mark.parametrize("ts", [6.15e294, -3.0e-05, float("inf")])
def test_a_sample_time_no_clock_can_show_is_refused_naming_it(ts: float) -> None:
    with pytest.raises(BundleError, match="sample timestamp"):
        parse_bundle({"metrics": [{"name": "DCGM_FI_DEV_GPU_TEMP", "values": [[ts, 70.0]]}]})
    assert parse_bundle({"metrics": [{"name": "x", "values": [[1796234687.2, "NaN"]]}]}).metrics[0].values
