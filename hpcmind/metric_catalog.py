"""The metric catalogue (metric_catalog.csv): name, type, unit, exact label set, source, help.

Shared by the simulator and the collector; parsed by a pure function that names the bad line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

TYPES = frozenset({"gauge", "counter", "histogram", "info"})


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class MetricDef:
    name: str
    type: str
    unit: str
    labels: tuple[str, ...]
    source: str
    help: str


def parse_catalog(text: str, origin: str = "metric_catalog.csv") -> dict[str, MetricDef]:
    out: dict[str, MetricDef] = {}
    for lineno, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or row[0].startswith("#"):
            continue
        if len(row) != 6:
            raise CatalogError(f"{origin}:{lineno}: expected 6 fields, got {len(row)}")
        name, typ, unit, labels, source, help_ = (c.strip() for c in row)
        if typ not in TYPES:
            raise CatalogError(f"{origin}:{lineno}: unknown type {typ!r}")
        if name in out:
            raise CatalogError(f"{origin}:{lineno}: duplicate metric {name}")
        out[name] = MetricDef(name, typ, unit, tuple(labels.split()), source, help_)
    return out


@cache
def catalog() -> dict[str, MetricDef]:
    return parse_catalog(resources.files("hpcmind").joinpath("metric_catalog.csv").read_text(encoding="utf-8"))
