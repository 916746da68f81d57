"""The analyzer against real servers: PostgreSQL as the store, a kill -9 right after the 200."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from analyzer.alertmanager import AlertmanagerPayload
from analyzer.rca import SignatureEngine
from analyzer.service import AnalyzerService
from analyzer.store import MIGRATIONS, Store, metadata
from hpcmind.services.catalog import postgres_url
from hpcmind.settings import Settings, load_settings
from tests.conftest import ROOT, free_port
from tests.unit.test_analyzer_app import FAILED, HANG, OTHER, TOKEN, XID, payload


def clean_slate(store: Store) -> None:
    """Empty every data table of the shared local PostgreSQL (the schema and store id stay)."""
    with store.tx() as c:
        for t in reversed(metadata.sorted_tables):  # children before the incidents they reference
            if t.name in ("schema_version", "store_meta"):
                continue
            c.execute(t.delete())


@pytest.fixture
def pg_store(settings: Settings) -> Iterator[Store]:
    store = Store(postgres_url(settings))
    clean_slate(store)
    yield store
    store.close()


def test_postgres_store_dedups_and_correlates(settings: Settings, pg_store: Store) -> None:
    s = load_settings(analyzer={"prometheus_url": "http://127.0.0.1:9"})
    svc = AnalyzerService(s, pg_store, SignatureEngine())
    again = Store(postgres_url(settings))  # migrations are idempotent
    assert pg_store.version == again.version == MIGRATIONS[-1][0]
    again.close()
    for body in (payload(XID), payload(XID), payload(XID, HANG, FAILED), payload(OTHER)):
        svc.process(svc.accept(AlertmanagerPayload.model_validate(body)))
    items = svc.list_incidents(state=None, root_cause=None, node=None, job=None, limit=50, offset=0)["items"]
    assert sorted(i["root_cause"] for i in items) == ["gpu_hardware_fault", "host_oom"]
    hw = next(i for i in items if i["root_cause"] == "gpu_hardware_fault")
    assert len(svc.get_incident(hw["id"])["alerts"]) == 3
    assert (
        svc.ingest_logs([{"id": "x1", "ts": "2026-11-21T10:00:00Z", "source": "node/n/kernel", "line": "a"}] * 2) == 2
    )
    assert svc.pending_payloads() == []


def test_postgres_stores_poison_alerts_and_lines_beside_good_ones(settings: Settings, pg_store: Store) -> None:
    """NUL bytes and over-long fields used to fail the whole payload on PostgreSQL after the 200."""
    from analyzer.intake import log_lines_in
    from tests.unit.test_intake import poison_alerts

    s = load_settings(analyzer={"prometheus_url": "http://127.0.0.1:9"})
    svc = AnalyzerService(s, pg_store, SignatureEngine())
    pid = svc.accept(AlertmanagerPayload.model_validate(payload(XID, *poison_alerts(), OTHER)))
    svc.process(pid)
    items = svc.list_incidents(state=None, root_cause=None, node=None, job=None, limit=50, offset=0)["items"]
    assert len(items) == 5 and all(i["root_cause"] for i in items)
    assert svc.pending_payloads() == [] and svc.undiagnosed() == []
    lines, bad = log_lines_in(
        [
            {"id": "p1", "line": "NUL \x00 in a line", "source": "node/x\x00/kernel"},
            {"id": "p2", "line": "fine"},
            {"id": "p3", "line": "y" * 200_000, "source": "s" * 999, "ts": "not a time"},
            {"line": "no id"},
            "not even an object",
        ]
    )
    assert bad == 2 and svc.ingest_logs(lines) == 3


class Analyzer:
    """`hpcmind serve` as a subprocess on its own SQLite file, started and killed like a real deployment."""

    def __init__(self, tmp_path: Path, database_url: str = "", **env: str) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "HPCMIND_ANALYZER__PORT": str(self.port),
            "HPCMIND_ANALYZER__API_TOKEN": TOKEN,
            "HPCMIND_ANALYZER__DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'k.db'}",
            "HPCMIND_ANALYZER__PROMETHEUS_URL": "http://127.0.0.1:9",
            **env,
        }
        self.base = f"http://127.0.0.1:{self.port}"
        self.h = {"Authorization": f"Bearer {TOKEN}"}
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-m", "hpcmind", "serve"],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 90  # generous on a busy machine
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.kill()
        raise AssertionError("analyzer did not start")

    def kill(self) -> None:
        if self.p is not None:
            self.p.send_signal(signal.SIGKILL)
            self.p.wait(10)
            self.p = None

    def incidents(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = httpx.get(
                self.base + "/api/v1/incidents", params={"limit": 500, "offset": len(items)}, headers=self.h
            ).json()["items"]
            items += page
            if len(page) < 500:
                return items


def test_kill_9_after_200_loses_nothing(tmp_path: Path) -> None:
    a = Analyzer(tmp_path)
    a.start()
    try:
        # kill -9 right after the 200: the payload is on disk, processing may not have happened
        r = httpx.post(a.base + "/api/v1/alertmanager", json=payload(XID), headers=a.h)
        assert r.status_code == 200
        a.kill()
        a.start()
        deadline, items = time.monotonic() + 30, []
        while time.monotonic() < deadline and not items:
            items = [i for i in a.incidents() if i["root_cause"]]
            time.sleep(0.2)
        assert [i["root_cause"] for i in items] == ["gpu_hardware_fault"]
    finally:
        a.kill()


def test_kill_9_mid_payload_leaves_no_incident_undiagnosed(tmp_path: Path) -> None:
    """One big payload, killed while its incidents are being diagnosed: after the restart every one of them is
    diagnosed, exactly once each (a replay used to take the recorded alerts for duplicates and diagnose none)."""
    from tests.unit.test_crash_recovery import _storm

    n = 300
    a = Analyzer(tmp_path)
    a.start()
    try:
        assert httpx.post(a.base + "/api/v1/alertmanager", json=_storm(n), headers=a.h, timeout=60).status_code == 200
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(i["root_cause"] for i in a.incidents()):
            time.sleep(0.05)
        a.kill()
        a.start()
        deadline, done = time.monotonic() + 300, 0
        while time.monotonic() < deadline:
            items = a.incidents()
            done = sum(1 for i in items if i["root_cause"])
            if done == n:
                break
            time.sleep(0.5)
        assert len(items) == n, f"{len(items)} incidents for {n} distinct faults"
        assert done == n, f"{n - done} of {n} incidents left undiagnosed after the restart"
        assert {i["root_cause"] for i in items} == {"gpu_hardware_fault"}
    finally:
        a.kill()


def test_kafka_log_bus_feeds_the_log_store(settings: Settings, tmp_path: Path) -> None:
    import asyncio
    import json as _json

    from aiokafka import AIOKafkaProducer

    from analyzer.logbus import kafka_consumer

    topic = f"it-analyzer-{time.time_ns()}"
    s = load_settings(
        kafka={"port": settings.kafka.port, "topic": topic},
        analyzer={"database_url": f"sqlite:///{tmp_path / 'kb.db'}", "log_bus": "kafka"},
    )
    store = Store(s.analyzer.database_url)
    svc = AnalyzerService(s, store, SignatureEngine())
    lines = [
        {"id": f"k{i}", "ts": "2026-11-21T10:00:00Z", "source": f"node/n{i % 3}/kernel", "line": f"line {i}"}
        for i in range(200)
    ]

    async def go() -> int:
        prod = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{settings.kafka.port}")
        await prod.start()
        for ln in lines + lines[:20]:  # at-least-once: some arrive twice
            await prod.send_and_wait(topic, _json.dumps(ln).encode(), key=ln["source"].encode())
        await prod.send_and_wait(topic, b"not json", key=b"x")
        await prod.stop()
        task = asyncio.create_task(kafka_consumer(s, svc))
        try:
            for _ in range(200):
                await asyncio.sleep(0.1)
                with store.tx() as c:
                    n = int(c.exec_driver_sql("SELECT count(*) FROM log_lines").scalar() or 0)
                if n >= 200:
                    break
            return n
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    assert asyncio.run(go()) == 200
    store.close()
