"""How a workload gets scraped: a file_sd target file beside Prometheus, and a wait for one last scrape at exit.

Slurm jobs come and go faster than a static scrape config; each process drops
`<targets-dir>/workloads-<name>-<job>-<rank>.json` when it starts serving and removes it when it stops. A
short job would otherwise end between two scrapes and never be seen, so `flush()` waits (bounded) until
Prometheus has scraped once after the last update.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry


class ScrapeTarget:
    def __init__(self, registry: CollectorRegistry, address: str, labels: dict[str, str], targets_dir: Path | None):
        self._scraped = threading.Condition()
        self._last_scrape = 0.0
        registry.register(self)  # collect() below notes each scrape; it adds no series
        self.path: Path | None = None
        if targets_dir is not None:
            targets_dir.mkdir(parents=True, exist_ok=True)
            self.path = (
                targets_dir / f"workloads-{labels['workload']}-{labels['job_id']}-{labels.get('rank', '0')}.json"
            )
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps([{"targets": [address], "labels": labels}]))
            tmp.rename(self.path)  # Prometheus never reads a half-written file

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        with self._scraped:
            self._last_scrape = time.monotonic()
            self._scraped.notify_all()
        return []

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` s for one scrape after now (False without a target file: nobody scrapes us)."""
        if self.path is None:
            return False
        since = time.monotonic()
        with self._scraped:
            return self._scraped.wait_for(lambda: self._last_scrape > since, timeout)

    def close(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
