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


def format_values(values: np.ndarray) -> list[bytes]:
    """Each value as its exposition text plus the line's newline."""
    if values.size and not np.isfinite(values).all():
        return [(format_value(float(v)) + "\n").encode() for v in values]
    return [(repr(v) + "\n").encode() for v in values.astype(np.float64).tolist()]


class BlockFamily(Metric):
    """A metric family whose samples are arrays: line prefixes (b'name{labels} ') and values."""

    def __init__(self, name: str, documentation: str, typ: str) -> None:
        super().__init__(name, documentation, typ)
        self.blocks: list[tuple[Sequence[bytes], np.ndarray]] = []

    def add_block(self, prefixes: Sequence[bytes], values: np.ndarray) -> None:
        self.blocks.append((prefixes, values))

    @property
    def samples(self) -> list[Sample]:  # slow path, for generic consumers of the registry
        from prometheus_client.parser import text_string_to_metric_families

        text = b"".join(render_lines(p, v) for p, v in self.blocks).decode()
        return [s for fam in text_string_to_metric_families(text) for s in fam.samples]

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        pass  # Metric.__init__ assigns an empty list


class Prerendered(Metric):
    """Families already rendered to exposition text (a source that renders once per state change)."""

    def __init__(self, name: str, text: bytes) -> None:
        super().__init__(name, "", "untyped")
        self.text = text


def render_lines(prefixes: Sequence[bytes], values: np.ndarray) -> bytes:
    # interleave prefix and value pieces: one join, no per-line string building
    parts: list[bytes] = [b""] * (2 * len(prefixes))
    parts[0::2] = prefixes
    parts[1::2] = format_values(values)
    return b"".join(parts)


def _header(m: Metric) -> str:
    name = m.name + "_total" if m.type == "counter" and not m.name.endswith("_total") and _has_total(m) else m.name
    doc = m.documentation.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {m.type}\n"


def _has_total(m: Metric) -> bool:
    if isinstance(m, BlockFamily):
        return any(b[0] and b[0][0].split(b"{")[0].rstrip().endswith(b"_total") for b in m.blocks)
    return any(s.name.endswith("_total") for s in m.samples)


def render(families: Iterable[Metric]) -> bytes:
    parts: list[bytes] = []
    for m in families:
        if isinstance(m, Prerendered):
            parts.append(m.text)
            continue
        parts.append(_header(m).encode())
        if isinstance(m, BlockFamily):
            parts += [render_lines(p, v) for p, v in m.blocks if len(v)]
        else:
            parts += [f"{s.name}{label_string(dict(s.labels))} {format_value(s.value)}\n".encode() for s in m.samples]
    return b"".join(parts)
