"""Causes a bundle's own numbers rule out: data wait a small share of every step is no dataloader bottleneck."""

from __future__ import annotations

import pytest

from analyzer.rca.contradictions import data_wait_share, ruled_out
from hpcmind.contract import parse_bundle

pytestmark = pytest.mark.unit


def _series(name: str, values: list[float]) -> dict:
    return {
        "name": name,
        "labels": {"instance": "n1:9100"},
        "values": [[float(t * 15), v] for t, v in enumerate(values)],
    }


def test_step_metrics_with_a_small_data_wait_rule_the_dataloader_out() -> None:
    b = parse_bundle(
        {
            "metrics": [
                _series("astro_train_step_seconds", [1.1, 1.2, 2.4, 2.3]),
                _series("astro_train_data_wait_seconds", [0.05, 0.05, 0.06, 0.05]),
            ]
        }
    )
    assert data_wait_share(b) == pytest.approx(0.05 / 1.1)
    assert "dataloader_bottleneck" in ruled_out(b)


def test_a_data_wait_that_dominates_any_step_rules_nothing_out() -> None:
    b = parse_bundle(
        {
            "metrics": [
                _series("train_step_seconds", [1.0, 1.0, 4.0, 4.2]),
                _series("train_data_wait_seconds", [0.05, 0.05, 3.1, 3.4]),
            ]
        }
    )
    assert data_wait_share(b) > 0.7 and ruled_out(b) == {}


@pytest.mark.parametrize(
    ("line", "share"),
    [
        ("step=2990 loss=2.2794 step_time=1.075 data_wait=0.036 lr=3.00e-04", 0.036 / 1.075),
        ("Epoch: [13][10/500]\tTime 2.405 (2.405)\tData 1.607 (1.607)\tLoss 2.2043 (2.2043)", 1.607 / 2.405),
    ],
)
def test_the_workloads_step_lines_count_too(line: str, share: float) -> None:
    assert data_wait_share(parse_bundle({"logs": [{"line": line}]})) == pytest.approx(share)


def test_no_step_numbers_no_opinion() -> None:
    assert (
        data_wait_share(parse_bundle({"logs": [{"line": "RuntimeError: DataLoader worker (pid 4242) is killed"}]}))
        is None
    )
    assert ruled_out(parse_bundle({"logs": [{"line": "x"}]})) == {}
