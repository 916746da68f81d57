from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from analyzer.app import create_app
from hpcmind.services.proc import http_ok, wait_until
from hpcmind.settings import Settings, load_settings
from tests.conftest import ROOT
from tests.standins.grafana import GrafanaStandIn


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@dataclass
class Stack:
    base: str  # the analyzer
    headers: dict[str, str]
    grafana: GrafanaStandIn
    prometheus: str
    targets: Path  # Prometheus' file_sd directory

    def incidents(self) -> list[dict[str, Any]]:
        return list(httpx.get(self.base + "/api/v1/incidents", headers=self.headers).json()["items"])


@contextmanager
def analyzer_stack(settings: Settings, db: Path) -> Iterator[Stack]:
    """The analyzer in process (SQLite at `db`, Grafana stand-in) behind the real Prometheus and Alertmanager
    `hpcmind services up` started, with the shipped alert rules loaded for the duration."""
    grafana = GrafanaStandIn(token="testtoken").start()
    prom_url = f"http://127.0.0.1:{settings.prometheus.port}"
    s = settings.model_copy(
        update={
            "analyzer": settings.analyzer.model_copy(
                update={
                    "database_url": f"sqlite:///{db}",
                    "grafana_url": grafana.url,
                    "grafana_token": type(settings.analyzer.grafana_token)("testtoken"),
                    "prometheus_url": prom_url,
                }
            )
        }
    )
    a = s.analyzer
    server = uvicorn.Server(uvicorn.Config(create_app(s), host=a.host, port=a.port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://{a.host}:{a.port}"
    prom = settings.services.run_dir / "prometheus"
    rules = list((ROOT / "prometheus" / "rules").glob("*.yml"))
    try:
        # the analyzer loads its engine before it serves: poll with the services' generous deadline
        wait_until(lambda: http_ok(base + "/healthz"), s.services.ready_timeout_s, "analyzer")
        for f in rules:
            shutil.copy(f, prom / "rules" / f.name)
        httpx.post(prom_url + "/-/reload")
        yield Stack(base, {"Authorization": f"Bearer {a.api_token.get_secret_value()}"}, grafana, prom_url,
                    prom / "targets")  # fmt: skip
    finally:
        server.should_exit = True
        for f in rules:
            (prom / "rules" / f.name).unlink(missing_ok=True)
        httpx.post(prom_url + "/-/reload")
        grafana.stop()


def training_scenario(
    name: str, seed: int, prefix: str, nodes: int, gpus: int, first_job: int, faults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A 1 s-tick cluster of one GPU partition busy with long training jobs, random faults off."""
    return {
        "name": name,
        "seed": seed,
        "tick_seconds": 1,
        "cluster": {
            "name": "e2e",
            "partitions": [{"name": "gpu", "nodes": nodes, "node_prefix": prefix, "gpus_per_node": gpus, "ib_hcas": 1}],
        },
        "workload": {
            "arrivals_per_hour": 0,
            "initial_utilisation": 1.0,
            "mix": {"training": 1.0},
            "user_failure_rate": 0,
            "mean_runtime": "30h",
            "first_job_id": first_job,
        },
        "faults": {"random": {"enabled": False, "confounders_per_hour": 0}, "scheduled": [], **(faults or {})},
    }
