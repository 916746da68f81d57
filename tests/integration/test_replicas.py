"""Two analyzer replicas (`hpcmind serve` subprocesses) on one PostgreSQL, both in Alertmanager's receiver, logs over
Kafka. Every alert group is POSTed to both, as Alertmanager does with two webhook URLs; a few groups reach only the
second, as through a load balancer. The second is `kill -9`ed mid-storm and never comes back.

Afterwards: every accepted alert recorded, exactly one incident per fault, each diagnosed and no revision diagnosed
twice, one Grafana annotation per incident, every log line stored once.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from analyzer.store import Store, diagnoses, incident_alerts, log_lines
from hpcmind.services.catalog import postgres_url
from hpcmind.settings import Settings
from tests.integration.test_analyzer_service import Analyzer, clean_slate
from tests.standins.grafana import GrafanaStandIn
from tests.unit.test_analyzer_app import payload
from tests.unit.test_crash_recovery import _storm

pytestmark = pytest.mark.integration
BOTH, ONLY_B, PER_PAYLOAD, LINES = 200, 40, 20, 200


def groups(alerts: list[dict], n: int) -> list[dict]:
    return [payload(*alerts[i : i + n]) for i in range(0, len(alerts), n)]


def deliver(a: Analyzer, bodies: list[dict], accepted: list[dict], stop: threading.Event) -> None:
    """Alertmanager's side for one receiver URL: each group until a 200 (through connection errors), until stopped."""
    for body in bodies:
        while not stop.is_set():
            try:
                r = httpx.post(a.base + "/api/v1/alertmanager", json=body, headers=a.h, timeout=30)
                if r.status_code == 200:
                    accepted.extend(body["alerts"])
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)


def produce(port: int, topic: str, lines: list[dict]) -> None:
    from aiokafka import AIOKafkaProducer

    async def go() -> None:
        prod = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{port}")
        await prod.start()
        try:
            for ln in lines:
                await prod.send_and_wait(topic, json.dumps(ln).encode(), key=ln["source"].encode())
        finally:
            await prod.stop()

    asyncio.run(go())


def test_two_replicas_one_killed_mid_storm(tmp_path: Path, settings: Settings) -> None:
    url = postgres_url(settings)
    store = Store(url)
    clean_slate(store)
    topic = f"it-replicas-{time.time_ns()}"
    g = GrafanaStandIn(token="testtoken").start()
    env = {
        "HPCMIND_MODEL__ENGINE": "signatures",  # the sharing, not the model, is under test
        "HPCMIND_ANALYZER__GRAFANA_URL": f"http://127.0.0.1:{g.port}",
        "HPCMIND_ANALYZER__GRAFANA_TOKEN": "testtoken",
        "HPCMIND_ANALYZER__LOG_BUS": "kafka",
        "HPCMIND_KAFKA__PORT": str(settings.kafka.port),
        "HPCMIND_KAFKA__TOPIC": topic,
    }
    a, b = Analyzer(tmp_path, url, **env), Analyzer(tmp_path, url, **env)
    every = _storm(BOTH + ONLY_B)["alerts"]
    shared, b_only = groups(every[:BOTH], PER_PAYLOAD), groups(every[BOTH:], PER_PAYLOAD)
    lines = [
        {"id": f"r{i}", "ts": "2026-11-21T10:00:00Z", "source": f"node/gpu-{i % 50:04d}/kernel", "line": f"l {i}"}
        for i in range(LINES)
    ]
    stop_a, stop_b = threading.Event(), threading.Event()
    got_a: list[dict] = []
    got_b: list[dict] = []
    try:
        a.start()
        b.start()
        produce(settings.kafka.port, topic, lines[: LINES // 2])
        # B alone gets some groups first (a load balancer's share), then both get the storm
        deliver(b, b_only, got_b, stop_b)
        ta = threading.Thread(target=deliver, args=(a, shared, got_a, stop_a), daemon=True)
        tb = threading.Thread(target=deliver, args=(b, shared, got_b, stop_b), daemon=True)
        ta.start()
        tb.start()
        deadline = time.monotonic() + 120
        while len(got_b) < len(every[BOTH:]) + BOTH // 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        b.kill()  # mid-storm: some groups processed, some accepted and pending, the rest never delivered to B
        stop_b.set()
        produce(settings.kafka.port, topic, lines[LINES // 2 :])
        ta.join(600)
        assert not ta.is_alive(), "Alertmanager's side could not deliver every group to the surviving replica"
        accepted = {x["fingerprint"] for x in got_a + got_b}
        assert len(accepted) == BOTH + ONLY_B

        # the survivor finishes what B accepted (its sweeper adopts B's payloads once they are stale)
        deadline, items = time.monotonic() + 600, []
        while time.monotonic() < deadline:
            items = a.incidents()
            if len(items) >= len(accepted) and all(i["root_cause"] for i in items) and len(g.annotations) >= len(items):
                time.sleep(3)  # anything still in flight would show as a duplicate now
                items = a.incidents()
                break
            time.sleep(1)
        nodes = Counter(i["culprit"].get("node") for i in items)
        assert len(items) == len(accepted), f"{len(items)} incidents for {len(accepted)} faults"
        assert max(nodes.values()) == 1, "an incident was duplicated"
        assert all(i["root_cause"] == "gpu_hardware_fault" for i in items), "an incident was left undiagnosed"
        with store.tx() as c:
            recorded = set(c.execute(select(incident_alerts.c.fingerprint)).scalars())
            twice = c.execute(
                select(diagnoses.c.incident_id, diagnoses.c.revision)
                .group_by(diagnoses.c.incident_id, diagnoses.c.revision)
                .having(func.count() > 1)
            ).all()
        assert recorded == accepted, f"{len(accepted - recorded)} accepted alerts lost"
        assert not twice, f"{len(twice)} revisions diagnosed twice"
        tags = Counter(t for ann in g.annotations for t in ann["tags"] if t.startswith("hpcmind-incident:"))
        assert len(g.annotations) == len(items) == len(tags), f"{len(g.annotations)} annotations, {len(tags)} distinct"

        # logs: each replica reads the topic, each line is stored once
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with store.tx() as c:
                n = int(c.execute(select(func.count()).select_from(log_lines)).scalar() or 0)
            if n >= LINES:
                break
            time.sleep(0.5)
        assert n == LINES
    finally:
        stop_a.set()
        stop_b.set()
        a.kill()
        b.kill()
        g.stop()
        store.close()
