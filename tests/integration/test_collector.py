"""The collector against real servers: Prometheus scrapes it, Slurm feeds it, Kafka carries its logs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.exposition import render
from collector.guard import GuardedCollector
from collector.logship import KafkaPublisher, LogRecord, LogShipper, record_id
from collector.server import MetricsServer
from collector.sources.simulator import SimulatorSource
from collector.sources.slurm import CliClient, RestClient, SlurmSource
from hpcmind.services.catalog import Slurm, Slurmrestd
from hpcmind.settings import Settings
from simulator.scenario import parse_scenario

SMALL = {
    "name": "it",
    "seed": 4,
    "tick_seconds": 15,
    "cluster": {"partitions": [{"name": "gpu", "nodes": 2, "node_prefix": "itn", "gpus_per_node": 4, "ib_hcas": 1}]},
}


def prom_query(settings: Settings, q: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{settings.prometheus.port}/api/v1/query"
    deadline = time.monotonic() + timeout
    while True:
        res: list[dict[str, Any]] = httpx.get(url, params={"query": q}).json()["data"]["result"]
        if res or time.monotonic() > deadline:
            return res
        time.sleep(0.5)


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[MetricsServer, Path]]:
    src = SimulatorSource(parse_scenario(SMALL), speed=15.0)  # a 15 s tick every wall second
    src.start()

    dead = SlurmSource(RestClient("unix:/nonexistent/restd.sock"))
    srv = MetricsServer(GuardedCollector([src, dead]).collect, port=0)
    srv.start()
    target = settings.services.run_dir / "prometheus" / "targets" / "it-collector.json"
    target.write_text(json.dumps([{"targets": [f"127.0.0.1:{srv.port}"], "labels": {"cluster": "it"}}]))
    yield srv, target
    target.unlink(missing_ok=True)
    srv.stop()
    src.stop()
    dead.stop()


def test_prometheus_scrapes_dcgm_names_and_labels(settings: Settings, served: tuple[MetricsServer, Path]) -> None:
    res = prom_query(settings, 'DCGM_FI_DEV_GPU_UTIL{cluster="it"}')
    assert len(res) == 8, res
    labels = res[0]["metric"]
    assert {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION"} <= set(labels)
    assert labels["Hostname"].startswith("itn")
    # honor_labels keeps the node exporter identity the collector speaks for
    inst = prom_query(settings, 'node_memory_MemAvailable_bytes{cluster="it"}')
    assert {r["metric"]["instance"] for r in inst} == {"itn001:9100", "itn002:9100"}


def test_broken_source_shows_up_zero_while_the_rest_is_served(served: tuple[MetricsServer, Path]) -> None:
    srv, _ = served
    body = httpx.get(f"http://127.0.0.1:{srv.port}/metrics").text
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    up = {s.labels["source"]: s.value for s in fams["hpcmind_collector_source_up"].samples}
    assert up == {"simulator": 1.0, "slurm": 0.0}
    assert len(fams["DCGM_FI_DEV_GPU_UTIL"].samples) == 8


def _submit(env: dict[str, str], out: Path, *args: str) -> int:
    res = subprocess.run(
        ["sbatch", "--parsable", "-o", str(out), *args], capture_output=True, text=True, env=env, check=True
    )
    return int(res.stdout.strip().split(";")[0])


@pytest.mark.parametrize("via", ["slurmrestd", "cli"])
def test_slurm_jobs_appear_with_state_events(settings: Settings, via: str) -> None:
    slurm = Slurm(settings)
    env = {**os.environ, **slurm.env()}
    client = RestClient(f"unix:{Slurmrestd(settings).socket_path}") if via == "slurmrestd" else CliClient(slurm.env())
    events: list[tuple[str, str]] = []
    src = SlurmSource(client, on_event=lambda s, ln: events.append((s, ln)))
    jid = _submit(env, slurm.dir / "jobs" / "it-%j.out", "-J", f"it-{via}", "--wrap", "exit 3")
    deadline, info = time.monotonic() + 30, {}
    while time.monotonic() < deadline:
        fams = {f.name: f for f in text_string_to_metric_families(render(src.collect()).decode())}
        info = {s.labels["job_id"]: s.labels for s in fams["hpcmind_slurm_job_info"].samples}
        if info.get(str(jid), {}).get("state") == "FAILED":
            break
        time.sleep(0.3)
    src.stop()
    assert info[str(jid)]["state"] == "FAILED" and info[str(jid)]["exit_code"] == "3:0"
    assert any(s == f"slurm/{jid}" and "JobState=FAILED" in ln and "ExitCode=3:0" in ln for s, ln in events)


def test_kafka_carries_every_line_of_a_run(settings: Settings) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = f"it-logs-{time.time_ns()}"
    bootstrap = f"127.0.0.1:{settings.kafka.port}"
    shipper = LogShipper(KafkaPublisher(bootstrap, topic), batch_size=200)
    sent: list[LogRecord] = []

    def on_log(t: float, source: str, line: str) -> None:
        rec = LogRecord(record_id("it", len(sent)), str(t), source, line)
        sent.append(rec)
        shipper.submit(rec)

    scen = {
        **SMALL,
        "workload": {"arrivals_per_hour": 60, "user_failure_rate": 0.5, "mean_runtime": "20m"},
        "faults": {"random": {"time_compression": 50000}, "cascade_scale": 0.1},
    }
    src = SimulatorSource(parse_scenario(scen), on_log=on_log)
    for _ in range(240):
        src.advance()
    shipper.start()
    assert shipper.drain(60)
    shipper.stop()
    assert len(sent) > 50

    async def consume() -> list[dict[str, str]]:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await c.start()
        try:
            parts = c.partitions_for_topic(topic) or {0}
            tps = [TopicPartition(topic, p) for p in parts]
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            got: list[dict[str, str]] = []
            idle = 0
            while idle < 3:
                batch = await c.getmany(timeout_ms=1000)
                idle = 0 if batch else idle + 1
                got += [json.loads(m.value) for msgs in batch.values() for m in msgs if m.value]
            return got
        finally:
            await c.stop()

    got = asyncio.run(consume())
    ids = [g["id"] for g in got]
    assert set(ids) == {r.id for r in sent}, "lines lost"
    assert len(ids) - len(set(ids)) <= len(sent) // 10  # duplicates only as at-least-once allows


def test_collect_proc_serves_node_exporter_names_and_stops_on_sigterm() -> None:
    import signal
    import sys

    from hpcmind.services.proc import http_ok, wait_until
    from tests.conftest import ROOT, free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCMIND_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpcmind", "collect", "--source", "proc", "--log-bus", "none", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/metrics"), 90, "collect --source proc")
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes"} <= names
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "hpcmind collect: stopped" in err
