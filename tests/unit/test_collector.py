"""Collector: exposition, sources as pure transforms, the guard, job mapping, log shipping."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from collector.exposition import BlockFamily, label_string, render
from collector.guard import GuardedCollector
from collector.jobmap import attribute, read_job_mapping, write_job_mapping
from collector.logship import (
    DeliveryError,
    FileFollower,
    HttpPublisher,
    LogRecord,
    LogShipper,
    RejectedError,
    record_id,
)
from collector.server import MetricsServer
from collector.sources.proc import ProcSource
from collector.sources.simulator import SimulatorSource
from collector.sources.slurm import SlurmSource, exit_code, slurm_families
from simulator.scenario import parse_scenario

DATA = Path(__file__).resolve().parents[1] / "data"
DCGM_LABELS = {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION"}
SMALL = {
    "name": "c",
    "seed": 2,
    "tick_seconds": 15,
    "cluster": {"partitions": [{"name": "gpu", "nodes": 2, "node_prefix": "gpu-a", "gpus_per_node": 4, "ib_hcas": 1}]},
}


def parse(body: bytes) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def test_block_family_renders_valid_exposition() -> None:
    f = BlockFamily("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", "gauge")
    f.add_block(
        [f"DCGM_FI_DEV_GPU_TEMP{label_string({'gpu': str(i), 'Hostname': 'n1'})} ".encode() for i in range(3)],
        np.array([40.0, math.nan, math.inf]),
    )
    c = BlockFamily("node_vmstat_oom_kill", "oom kills", "counter")
    c.add_block([b'node_vmstat_oom_kill{instance="n1:9100"} '], np.array([2.0]))
    text = render([f, c]).decode()
    assert '# TYPE DCGM_FI_DEV_GPU_TEMP gauge\nDCGM_FI_DEV_GPU_TEMP{Hostname="n1",gpu="0"} 40.0\n' in text
    assert 'gpu="1"} NaN' in text and 'gpu="2"} +Inf' in text
    fams = parse(text.encode())
    assert len(fams["DCGM_FI_DEV_GPU_TEMP"].samples) == 3
    assert fams["node_vmstat_oom_kill"].samples[0].value == 2.0
    assert [s.labels["gpu"] for s in f.samples] == ["0", "1", "2"]  # slow path for generic consumers


def test_label_values_are_escaped() -> None:
    assert label_string({"err_msg": 'a "b"\nc\\'}) == '{err_msg="a \\"b\\"\\nc\\\\"}'


def test_simulator_source_speaks_dcgm_exporter() -> None:
    src = SimulatorSource(parse_scenario(SMALL))
    src.advance()
    fams = parse(render(src.collect()))
    util = fams["DCGM_FI_DEV_GPU_UTIL"]
    assert len({s.labels["gpu"] + s.labels["Hostname"] for s in util.samples}) == 8
    assert all(set(s.labels) >= DCGM_LABELS for s in util.samples)
    xid = fams["DCGM_FI_DEV_XID_ERRORS"].samples[0]
    assert xid.labels["err_code"] == "0" and xid.labels["err_msg"] == "No Error"
    assert "node_infiniband_state_id" in fams and "slurm_nodes_idle" in fams


class Broken:
    name = "broken"

    def collect(self) -> Iterable[Metric]:
        raise ConnectionError("slurmrestd unreachable")


class Fine:
    name = "fine"

    def collect(self) -> Iterable[Metric]:
        g = GaugeMetricFamily("slurm_nodes_idle", "Idle nodes.")
        g.add_metric([], 3)
        return [g]


def test_broken_source_does_not_blank_the_scrape(caplog: pytest.LogCaptureFixture) -> None:
    guard = GuardedCollector([Broken(), Fine()])
    with caplog.at_level(logging.WARNING):
        fams = parse(render(guard.collect()))
        fams = parse(render(guard.collect()))
    up = {s.labels["source"]: s.value for s in fams["hpcmind_collector_source_up"].samples}
    assert up == {"broken": 0.0, "fine": 1.0}
    errs = {
        s.labels["source"]: s.value
        for s in fams["hpcmind_collector_source_errors"].samples
        if s.name.endswith("_total")
    }
    assert errs == {"broken": 2.0, "fine": 0.0}
    assert fams["slurm_nodes_idle"].samples[0].value == 3
    assert "slurmrestd unreachable" in caplog.text


def test_metrics_server_explicit_route() -> None:
    srv = MetricsServer(GuardedCollector([Fine()]).collect, port=0)
    srv.start()
    try:
        r = httpx.get(f"http://127.0.0.1:{srv.port}/metrics", follow_redirects=False)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "slurm_nodes_idle 3.0" in r.text
        assert httpx.get(f"http://127.0.0.1:{srv.port}/metrics/", follow_redirects=False).status_code == 404
    finally:
        srv.stop()


def test_slurm_json_to_exporter_families() -> None:
    data = json.loads((DATA / "slurm-22.05.json").read_text())
    fams = parse(render(slurm_families(data["jobs"], data["nodes"])))
    info = {s.labels["job_id"]: s.labels for s in fams["hpcmind_slurm_job_info"].samples}
    states = {v["name"]: (v["state"], v["exit_code"], v["reason"]) for v in info.values()}
    assert states["bad"] == ("FAILED", "3:0", "NonZeroExitCode")
    assert states["oom"] == ("OUT_OF_MEMORY", "0:125", "OutOfMemory")
    assert states["lc-train"][0] == "RUNNING"
    assert fams["slurm_jobs_outofmemory"].samples[0].value == 1
    assert fams["slurm_queue_failed"].samples[0].value == 1
    assert fams["slurm_nodes_mix"].samples[0].value + fams["slurm_nodes_alloc"].samples[0].value == 1


def test_exit_codes_as_sacct_prints_them() -> None:
    assert [exit_code(x) for x in (0, 768, 15, 253, 9, None)] == ["0:0", "3:0", "0:15", "0:125", "0:9", "0:0"]


def test_job_state_events_only_on_change() -> None:
    data = json.loads((DATA / "slurm-22.05.json").read_text())
    src = SlurmSource(client=None)  # type: ignore[arg-type]
    first = src.events(data["jobs"])
    assert len(first) == 3 and all(s.startswith("slurm/") for s, _ in first)
    assert any("JobState=OUT_OF_MEMORY" in ln and "ExitCode=0:125" in ln for _, ln in first)
    assert src.events(data["jobs"]) == []


def test_proc_source_from_a_fixture_tree() -> None:
    fams = parse(render(ProcSource(DATA / "proc", hostname="n7").collect()))
    assert fams["node_memory_MemAvailable_bytes"].samples[0].value == 20000000 * 1024
    assert fams["node_memory_MemAvailable_bytes"].samples[0].labels == {"instance": "n7:9100"}
    assert fams["node_vmstat_oom_kill"].samples[0].value == 3
    assert fams["node_pressure_memory_stalled_seconds"].samples[0].value == 0.5
    assert fams["node_pressure_io_stalled_seconds"].samples[0].value == 0.3


def test_job_mapping_format_and_attribution(tmp_path: Path) -> None:
    write_job_mapping(tmp_path, "0", ["4211"])
    write_job_mapping(tmp_path, "1", ["4211", "4212"])
    write_job_mapping(tmp_path, "2", [])
    assert (tmp_path / "1").read_text() == "4211\n4212\n"
    mapping = read_job_mapping(tmp_path)
    out = attribute([{"gpu": "0"}, {"gpu": "1"}, {"gpu": "2"}], mapping)
    assert out == [
        {"gpu": "0", "hpc_job": "4211"},
        {"gpu": "1", "hpc_job": "4211"},
        {"gpu": "1", "hpc_job": "4212"},
        {"gpu": "2"},
    ]


class Flaky:
    bus = "test"

    def __init__(self, fail: int, reject: bool = False) -> None:
        self.fail, self.reject, self.got = fail, reject, []  # type: list[str]

    def publish(self, batch: list[LogRecord]) -> None:
        if self.reject:
            raise RejectedError("HTTP 400")
        if self.fail:
            self.fail -= 1
            raise DeliveryError("down")
        self.got += [x.id for x in batch]

    def close(self) -> None:
        pass


def recs(n: int) -> list[LogRecord]:
    return [LogRecord(record_id("t", i), "2026-11-21T00:00:00Z", "node/n1/kernel", f"line {i}") for i in range(n)]


def test_shipper_retries_until_delivered_in_order() -> None:
    pub = Flaky(fail=3)
    sh = LogShipper(pub, batch_size=10, retry_base=0.01)
    for r in recs(25):
        assert sh.submit(r)
    sh.start()
    assert sh.drain(10)
    sh.stop()
    assert pub.got == [r.id for r in recs(25)]
    assert sh.retries == 3 and sh.delivered == 25


def test_an_absent_analyzer_is_said_at_the_default_log_level(caplog: pytest.LogCaptureFixture) -> None:
    sh = LogShipper(Flaky(fail=3), batch_size=10, retry_base=0.01)
    for r in recs(3):
        sh.submit(r)
    with caplog.at_level(logging.WARNING, logger="hpcmind.logship"):
        assert sh.flush_once() == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings[0].startswith("log delivery failed (1 in a row, 3 lines waiting)") and "down" in warnings[0]
    assert warnings[-1] == "log delivery recovered after 3 failed attempts"


def test_shipper_counts_and_logs_drops(caplog: pytest.LogCaptureFixture) -> None:
    sh = LogShipper(Flaky(fail=0), max_buffer=5)
    with caplog.at_level(logging.WARNING):
        accepted = [sh.submit(r) for r in recs(8)]
    assert accepted == [True] * 5 + [False] * 3
    assert sh.dropped["buffer_full"] == 3
    assert "dropped" in caplog.text
    rej = LogShipper(Flaky(fail=0, reject=True))
    rej.submit(recs(1)[0])
    rej.flush_once()
    assert rej.dropped["rejected"] == 1 and not rej.buf
    fams = parse(render(sh.collect()))
    assert {
        s.labels["reason"]: s.value for s in fams["hpcmind_logship_dropped_lines"].samples if s.name.endswith("_total")
    }["buffer_full"] == 3


def test_http_publisher_against_a_real_server() -> None:
    got: list[dict[str, Any]] = []
    codes = [503, 200]

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            code = codes.pop(0)
            if code == 200:
                got.append({"auth": self.headers["Authorization"], **body})
            self.send_response(code)
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    sh = LogShipper(HttpPublisher(f"http://127.0.0.1:{srv.server_address[1]}/api/v1/logs", "tok"), retry_base=0.01)
    for r in recs(3):
        sh.submit(r)
    sh.start()
    assert sh.drain(10)
    sh.stop()
    srv.shutdown()
    srv.server_close()
    assert got[0]["auth"] == "Bearer tok"
    assert [x["line"] for x in got[0]["lines"]] == ["line 0", "line 1", "line 2"]
    assert sh.retries == 1


def test_file_follower_tails_complete_lines(tmp_path: Path) -> None:
    f = tmp_path / "slurm-4211.out"
    f.write_text("epoch 1\nepoch 2\npart")
    fol = FileFollower(str(tmp_path / "slurm-*.out"), "job/{jobid}")
    first = fol.poll()
    assert [(r.source, r.line) for r in first] == [("job/4211", "epoch 1"), ("job/4211", "epoch 2")]
    with open(f, "a") as fh:
        fh.write("ial\nepoch 3\n")
    second = fol.poll()
    assert [r.line for r in second] == ["partial", "epoch 3"]
    assert fol.poll() == []
    assert len({r.id for r in first + second}) == 4


def test_bench_collector_writes_results(tmp_path: Path) -> None:
    from collector.bench import run

    result = run(tmp_path, sizes=(2,), scrapes=3, naive_scrapes=2)
    saved = json.loads((tmp_path / "collector.json").read_text())
    assert saved == result
    r = saved["results"][0]
    assert r["gpus"] == 16 and r["ours"]["bytes"] > 1000 and r["naive"]["bytes"] > 1000
    assert "speedup_p50" in r


def test_the_gpus_slurm_schedules_per_node_from_its_gres() -> None:
    from collector.sources.slurm import gres_gpus, slurm_families

    assert [gres_gpus(g) for g in ("gpu:4", "gpu:h100:8(S:0-1)", "gpu:a100:2,gpu:v100:2,shard:8", "", "mps:100")] == [
        4, 8, 4, 0, 0,
    ]  # fmt: skip
    nodes = [{"name": "g1", "state": "mixed", "gres": "gpu:h100:8(S:0-1)"}, {"name": "c1", "state": "idle"}]
    fam = {m.name: m for m in slurm_families([], nodes)}["hpcmind_slurm_node_gpus"]
    assert {s.labels["node"]: s.value for s in fam.samples} == {"g1": 8.0, "c1": 0.0}
