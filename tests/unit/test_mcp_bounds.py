"""The MCP server's pure parts: PromQL bounds and times, the node report's folding, Host/Origin allow-lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analyzer.mcp import health, promql
from analyzer.mcp.transports import security
from hpcmind.settings import load_settings

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
B = promql.Bounds(timedelta(hours=24), 1100, 50)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("now", NOW),
        ("now-90s", NOW - timedelta(seconds=90)),
        ("-2h", NOW - timedelta(hours=2)),
        ("2026-12-02T11:00:00Z", NOW - timedelta(hours=1)),
        ("2026-12-02T11:00:00", NOW - timedelta(hours=1)),  # no zone: UTC
        (str(NOW.timestamp() - 60), NOW - timedelta(minutes=1)),
    ],
)
def test_times_an_operator_would_type(text: str, want: datetime) -> None:
    assert promql.parse_time("start", text, NOW) == want


@pytest.mark.parametrize("text", ["yesterday", "now-", "now-5x", "-0s", "now--1h"])
def test_bad_times_name_the_argument(text: str) -> None:
    with pytest.raises(promql.QueryRefused, match=r"^start: "):
        promql.parse_time("start", text, NOW)


def test_range_step_defaults_to_the_finest_within_the_point_limit() -> None:
    r = promql.check_range(NOW - timedelta(hours=24), NOW, None, B)
    assert int(timedelta(hours=24) / r.step) + 1 <= B.max_points
    assert r.step == timedelta(seconds=79)  # ceil(86400 / 1099)


def test_ranges_outside_the_bounds_are_refused_with_the_way_out() -> None:
    with pytest.raises(promql.QueryRefused, match=r"^start: .*wider than the 24 h"):
        promql.check_range(NOW - timedelta(days=2), NOW, None, B)
    with pytest.raises(promql.QueryRefused, match=r"^step: .*use a step of at least 79s"):
        promql.check_range(NOW - timedelta(hours=24), NOW, timedelta(seconds=1), B)
    with pytest.raises(promql.QueryRefused, match=r"^start: must be before end"):
        promql.check_range(NOW, NOW - timedelta(hours=1), None, B)
    with pytest.raises(promql.QueryRefused, match=r"^query: empty"):
        promql.check_query("   ")


def test_node_queries_escape_the_node_and_ask_for_both_hostname_spellings() -> None:
    q = health.render("DCGM_FI_DEV_GPU_TEMP{$host}", timedelta(minutes=5), node='gpu"a.1')
    assert q == '(DCGM_FI_DEV_GPU_TEMP{Hostname="gpu\\"a.1"}) or (DCGM_FI_DEV_GPU_TEMP{hostname="gpu\\"a.1"})'
    ib = health.render('x{instance=~"$node_re(:[0-9]+)?"}[$window]', timedelta(hours=1), node="gpu-a.1")
    assert ib == 'x{instance=~"gpu\\\\-a\\\\.1(:[0-9]+)?"}[3600s]'


def _sample(metric: dict[str, str], v: str) -> dict[str, Any]:
    return {"metric": metric, "value": [0, v]}


def test_node_report_folds_series_per_gpu_and_port_and_says_what_is_wrong() -> None:
    answers = {
        "DCGM_FI_DEV_GPU_UTIL": [_sample({"gpu": "0"}, "97"), _sample({"gpu": "1"}, "0")],
        "DCGM_FI_DEV_XID_ERRORS": [_sample({"gpu": "1", "err_msg": "GPU has fallen off the bus"}, "79")],
        "node_infiniband_state_id": [_sample({"device": "mlx5_0", "port": "1"}, "1")],
        "min(up": [_sample({}, "1")],
    }

    def ask(q: str) -> list[dict[str, Any]]:
        return next((v for k, v in answers.items() if k in q), [])

    open_now = [{"id": 7, "state": "open", "root_cause": "gpu_hardware_fault"}]
    r = health.node_report(ask, "n1", timedelta(hours=1), open_now, open_now, NOW)
    assert [g["gpu"] for g in r["gpus"]] == ["0", "1"]
    assert r["gpus"][1] == {"gpu": "1", "util_pct": 0, "last_xid": 79, "last_xid_msg": "GPU has fallen off the bus"}
    assert r["ib_ports"] == [{"device": "mlx5_0", "port": "1", "state_id": 1, "state": "down"}]
    assert r["problems"] == [
        "GPU 1: Xid 79 GPU has fallen off the bus",
        "IB mlx5_0 port 1 is down",
        "open incident 7: gpu_hardware_fault",
    ]
    assert not r["healthy"] and r["incidents_in_window"] == {"gpu_hardware_fault": 1}


def test_a_failing_query_is_reported_beside_the_others() -> None:
    def ask(q: str) -> list[dict[str, Any]]:
        if "TEMP" in q:
            raise promql.QueryRefused("query: prometheus refused it (timeout): query timed out")
        return [_sample({"gpu": "0"}, "50")] if "GPU_UTIL" in q else []

    r = health.node_report(ask, "n1", timedelta(hours=1), [], [], NOW)
    assert r["errors"] == ["temp_c: query: prometheus refused it (timeout): query timed out"]
    assert r["gpus"][0]["util_pct"] == 50 and not r["healthy"]


def test_host_checks_allow_loopback_the_public_url_and_the_operators_list_even_on_0_0_0_0() -> None:
    s = load_settings(
        analyzer={"host": "0.0.0.0", "public_url": "https://hpcmind.example.org"},
        mcp={"allowed_hosts": ["analyzer:8080"]},
    )
    sec = security(s)
    assert sec.enable_dns_rebinding_protection
    assert "0.0.0.0:*" not in sec.allowed_hosts
    assert {"127.0.0.1:*", "hpcmind.example.org", "analyzer:8080"} <= set(sec.allowed_hosts)
    assert "https://hpcmind.example.org" in sec.allowed_origins
