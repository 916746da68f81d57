"""Metric sources, one class each; every source has a `name` and a `collect()` building families per scrape."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from prometheus_client.metrics_core import Metric


class Source(Protocol):
    name: str

    def collect(self) -> Iterable[Metric]: ...
