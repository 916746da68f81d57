"""The real analyzer, `kill -9`ed at random points of a 1,000-alert storm, five times, on SQLite and PostgreSQL:
afterwards 0 alerts lost, 0 incidents undiagnosed, 0 incidents or Grafana annotations duplicated.

Alertmanager's side is played as Alertmanager does it: each group is POSTed until it gets a 200 (retrying through
connection errors while the analyzer is down), so a payload stored just before a kill may arrive twice.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from analyzer.store import Store
from hpcmind.services.catalog import postgres_url
from hpcmind.settings import Settings
from tests.integration.test_analyzer_service import Analyzer, clean_slate
from tests.standins.grafana import GrafanaStandIn
from tests.unit.test_analyzer_app import payload
from tests.unit.test_crash_recovery import _storm

pytestmark = pytest.mark.integration
ALERTS, PER_PAYLOAD, KILLS = 1000, 50, 5


def storm() -> list[dict]:
    """ALERTS Xid 79s, one per node (so ALERTS incidents), in groups of PER_PAYLOAD as Alertmanager would send."""
    alerts = _storm(ALERTS)["alerts"]
    return [payload(*alerts[i : i + PER_PAYLOAD]) for i in range(0, ALERTS, PER_PAYLOAD)]


def send_all(a: Analyzer, bodies: list[dict], done: threading.Event, stop: threading.Event) -> None:
    for body in bodies:
        while not stop.is_set():
            try:
                if httpx.post(a.base + "/api/v1/alertmanager", json=body, headers=a.h, timeout=30).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)  # Alertmanager backs off and retries
    done.set()


def run_storm(tmp_path: Path, database_url: str, seed: int) -> None:
    rng = random.Random(seed)
    g = GrafanaStandIn(token="testtoken").start()
    a = Analyzer(
        tmp_path,
        database_url,
        HPCMIND_MODEL__ENGINE="signatures",  # the crash path, not the model, is under test
        HPCMIND_ANALYZER__GRAFANA_URL=f"http://127.0.0.1:{g.port}",
        HPCMIND_ANALYZER__GRAFANA_TOKEN="testtoken",
    )
    done, stop = threading.Event(), threading.Event()
    try:
        a.start()
        sender = threading.Thread(target=send_all, args=(a, storm(), done, stop), daemon=True)
        sender.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 4.0))  # somewhere in intake, processing or the outbox
            a.kill()
            a.start()
        assert done.wait(600), "Alertmanager's side could not deliver every group"
        deadline, items = time.monotonic() + 900, []
        while time.monotonic() < deadline:
            items = a.incidents()
            if len(items) >= ALERTS and all(i["root_cause"] for i in items) and len(g.annotations) >= len(items):
                time.sleep(3)  # anything still in flight would show as a duplicate now
                items = a.incidents()
                break
            time.sleep(1)
        hosts = Counter(i["culprit"].get("node") for i in items)
        assert len(items) == ALERTS, f"{len(items)} incidents for {ALERTS} faults"
        assert len(hosts) == ALERTS and max(hosts.values()) == 1, "an incident was duplicated"
        undiagnosed = [i["id"] for i in items if i["root_cause"] != "gpu_hardware_fault"]
        assert not undiagnosed, f"{len(undiagnosed)} incidents undiagnosed or misdiagnosed after {KILLS} kills"
        tags = Counter(t for ann in g.annotations for t in ann["tags"] if t.startswith("hpcmind-incident:"))
        assert len(g.annotations) == ALERTS and len(tags) == ALERTS, (
            f"{len(g.annotations)} annotations for {ALERTS} incidents ({len(tags)} distinct)"
        )
    finally:
        stop.set()
        a.kill()
        g.stop()


def test_kill_9_storm_on_sqlite(tmp_path: Path) -> None:
    run_storm(tmp_path, f"sqlite:///{tmp_path / 'storm.db'}", seed=1)


def test_kill_9_storm_on_postgres(tmp_path: Path, settings: Settings) -> None:
    url = postgres_url(settings)
    store = Store(url)
    clean_slate(store)
    store.close()
    run_storm(tmp_path, url, seed=2)
