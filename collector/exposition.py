"""Prometheus text exposition (format 0.0.4) built from families, with a fast path for array-backed families.

prometheus_client formats ~70k samples/s in Python; a dcgm-exporter-sized scrape (8,192 GPUs x 26 fields) would
take seconds. `BlockFamily` keeps label sets as pre-rendered strings and values as a numpy array, so a scrape is a
few vectorised string operations. Ordinary prometheus_client `Metric`s are rendered sample by sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_value(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def label_string(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_value(v)}"' for k, v in sorted(labels.items())) + "}"


def format_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def format_values(values: np.ndarray) -> list[str]:
    if values.size and not np.isfinite(values).all():
        return [format_value(float(v)) for v in values]
    return list(map(repr, values.astype(np.float64).tolist()))


class BlockFamily(Metric):
    """A metric family whose samples are arrays: line prefixes (`name{labels} `) and values."""

    def __init__(self, name: str, documentation: str, typ: str) -> None:
        super().__init__(name, documentation, typ)
        self.blocks: list[tuple[Sequence[str], np.ndarray]] = []

    def add_block(self, prefixes: Sequence[str], values: np.ndarray) -> None:
        self.blocks.append((prefixes, values))

    @property
    def samples(self) -> list[Sample]:  # slow path, for generic consumers of the registry
        from prometheus_client.parser import text_string_to_metric_families

        text = "".join(
            p + v + "\n"
            for prefixes, values in self.blocks
            for p, v in zip(prefixes, format_values(values), strict=True)
        )
        return [s for fam in text_string_to_metric_families(text) for s in fam.samples]

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        pass  # Metric.__init__ assigns an empty list


def _header(m: Metric) -> str:
    name = m.name + "_total" if m.type == "counter" and not m.name.endswith("_total") and _has_total(m) else m.name
    doc = m.documentation.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {m.type}\n"


def _has_total(m: Metric) -> bool:
    if isinstance(m, BlockFamily):
        return any(b[0] and b[0][0].split("{")[0].rstrip().endswith("_total") for b in m.blocks)
    return any(s.name.endswith("_total") for s in m.samples)


def render(families: Iterable[Metric]) -> bytes:
    parts: list[str] = []
    for m in families:
        parts.append(_header(m))
        if isinstance(m, BlockFamily):
            for prefixes, values in m.blocks:
                if len(values):
                    parts.append("\n".join(map(str.__add__, prefixes, format_values(values))))
                    parts.append("\n")
        else:
            for s in m.samples:
                parts.append(f"{s.name}{label_string(dict(s.labels))} {format_value(s.value)}\n")
    return "".join(parts).encode("utf-8")
