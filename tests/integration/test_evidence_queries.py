"""Every query of the evidence catalogue parses and runs against the real Prometheus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from analyzer.evidence.gather import prom_range
from analyzer.evidence.queries import QUERIES
from hpcmind.settings import Settings


def test_every_catalogue_query_runs(settings: Settings) -> None:
    base = f"http://127.0.0.1:{settings.prometheus.port}"
    end = datetime.now(UTC)
    with httpx.Client(timeout=10) as c:
        for q in QUERIES:
            query = q.render(node='gpu-a"001.x', job="4211")  # quotes and dots must be escaped, not break the query
            res = prom_range(c, base, query, end - timedelta(minutes=10), end)
            assert isinstance(res, list), q.name
