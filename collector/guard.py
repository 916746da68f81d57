"""A failing source never blanks the scrape: each source is collected on its own, with up/error metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from .sources import Source

log = logging.getLogger("hpcmind.collector")


class GuardedCollector:
    """A prometheus_client custom collector over several sources."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)
        self.errors = {s.name: 0 for s in self.sources}
        self.last_error: dict[str, str] = {}

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "hpcmind_collector_source_up", "Whether the source answered this scrape.", labels=["source"]
        )
        dur = GaugeMetricFamily(
            "hpcmind_collector_source_duration_seconds", "Time spent collecting the source.", labels=["source"]
        )
        out: list[Metric] = []
        for src in self.sources:
            t0 = time.perf_counter()
            try:
                fams = list(src.collect())  # a source's families are all or nothing
            except Exception as exc:
                self.errors[src.name] += 1
                self.last_error[src.name] = f"{type(exc).__name__}: {exc}"
                log.warning("source %s failed: %s", src.name, self.last_error[src.name])
                up.add_metric([src.name], 0)
            else:
                out += fams
                up.add_metric([src.name], 1)
            dur.add_metric([src.name], time.perf_counter() - t0)
        errs = CounterMetricFamily(
            "hpcmind_collector_source_errors", "Scrapes in which the source failed.", labels=["source"]
        )
        for name, n in self.errors.items():
            errs.add_metric([name], n)
        return [*out, up, dur, errs]
