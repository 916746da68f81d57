"""Catalogue-driven families: name -> (documentation, type), shared by every source."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

import numpy as np
from prometheus_client.metrics_core import Metric

from hpcmind.metric_catalog import MetricDef, catalog

from .exposition import BlockFamily, label_string

_HIST = re.compile(r"_(bucket|sum|count)$")


def family_of(sample_name: str) -> tuple[str, MetricDef]:
    cat = catalog()
    if sample_name in cat:
        d = cat[sample_name]
        return (sample_name.removesuffix("_total") if d.type == "counter" else sample_name), d
    base = _HIST.sub("", sample_name)
    if base in cat and cat[base].type == "histogram":
        return base, cat[base]
    raise KeyError(f"{sample_name} is not in the metric catalogue")


class LabelStrings:
    """JSON label sets (as the simulator interns them) -> exposition label strings, rendered once each."""

    def __init__(self) -> None:
        self._rendered: list[str] = []

    def sync(self, json_labels: Sequence[str]) -> list[str]:
        for s in json_labels[len(self._rendered) :]:
            self._rendered.append(label_string(json.loads(s)))
        return self._rendered


class FamilyBuilder:
    """Collects sample blocks under catalogue families, in catalogue order within one scrape."""

    def __init__(self) -> None:
        self._families: dict[str, BlockFamily] = {}

    def add(self, sample_name: str, label_strings: Sequence[str], values: np.ndarray) -> None:
        self.add_prefixed(sample_name, [(sample_name + lb + " ").encode() for lb in label_strings], values)

    def add_prefixed(self, sample_name: str, prefixes: Sequence[bytes], values: np.ndarray) -> None:
        """Like add(), with the line prefixes (b'name{labels} ') already built by the caller."""
        fam_name, d = family_of(sample_name)
        fam = self._families.get(fam_name)
        if fam is None:
            fam = self._families[fam_name] = BlockFamily(fam_name, d.help, d.type)
        fam.add_block(prefixes, values)

    def families(self) -> Iterable[Metric]:
        return list(self._families.values())
