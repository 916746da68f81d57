"""The 18 root-cause ids (project copy of shared/spec/root-causes.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

UNKNOWN = "unknown"


@dataclass(frozen=True)
class RootCause:
    id: str
    summary: str
    evidence: tuple[str, ...]
    remediation: str


@cache
def root_causes() -> dict[str, RootCause]:
    text = resources.files("hpcmind").joinpath("root_causes.yaml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    return {
        rc["id"]: RootCause(rc["id"], rc["summary"], tuple(rc.get("evidence", [])), rc["remediation"])
        for rc in doc["root_causes"]
    }


def root_cause_ids() -> tuple[str, ...]:
    return tuple(root_causes())
