"""Load and validate the template catalogue (`catalog/templates.yaml`, `sources.yaml`, `xid_catalog.csv`)."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml

from hpcmind.taxonomy import UNKNOWN, root_cause_ids

from ..rca.xid import XID_CAUSES

CATALOG = Path(__file__).resolve().parent / "catalog"
Role = Literal["root", "symptom", "healthy"]
ROLES = ("root", "symptom", "healthy")
PLACEHOLDER = re.compile(r"\{([a-z0-9]+)\}")
XID_SOURCE = "gpud:components/accelerator/nvidia/xid/catalog_generated.go"


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class Template:
    id: str
    cause: str
    role: Role
    src: str
    text: str
    follows: tuple[str, ...] = ()
    alone: str = UNKNOWN

    @property
    def label_alone(self) -> str:
        """The label of a bundle where this line stands alone."""
        return self.cause if self.role == "root" else UNKNOWN if self.role == "healthy" else self.alone


@cache
def sources() -> dict[str, dict[str, str]]:
    doc = yaml.safe_load((CATALOG / "sources.yaml").read_text())
    return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in doc.items()}


def _xid_cause(code: int, description: str, immediate: str) -> str | None:
    """The root cause of an Xid: our weighted map first (xid.py), then the catalogue's own words and bucket."""
    if code in XID_CAUSES:
        cause, weight = XID_CAUSES[code]
        return cause if weight >= 3 else None
    d = description.lower()
    if "nvlink" in d or "link training" in d:
        return "nvlink_error"
    if "ecc" in d or "memory" in d or "retirement" in d or "remap" in d or "dram" in d:
        return "gpu_memory_error"
    if immediate in ("RESET_GPU", "RESTART_BM", "CONTACT_SUPPORT") or "timeout" in d or "halt" in d:
        return "gpu_hardware_fault"
    return None  # application-caused engine exceptions and informational codes name no cluster fault


@cache
def xid_rows() -> tuple[dict[str, str], ...]:
    """NVIDIA's Xid catalogue (`xid_catalog.csv`): code, mnemonic, description, immediate and investigatory
    resolution, one dict per code."""
    with (CATALOG / "xid_catalog.csv").open() as f:
        return tuple(csv.DictReader(line for line in f if not line.startswith("#")))


def xid_templates() -> list[Template]:
    """One kernel line per catalogued Xid that names a cause, in the driver's print format (kernel_rc.c)."""
    out = []
    for r in xid_rows():
        code = int(r["code"])
        cause = _xid_cause(code, r["description"], r["immediate_resolution"])
        desc = r["description"].split(" / ")[0].strip()
        text = "{kts} NVRM: Xid (PCI:{pci}): " + f"{code}, pid={{pid}}, name=python3, {desc}"
        if cause is not None:  # an Xid that names no cluster fault is not healthy chatter either: left out
            out.append(Template(f"xid-{code}", cause, "root", XID_SOURCE, text))
    return out


@cache
def templates() -> tuple[Template, ...]:
    doc = yaml.safe_load((CATALOG / "templates.yaml").read_text())
    causes = set(root_cause_ids()) | {UNKNOWN}
    srcs = sources()
    out: list[Template] = []
    seen: set[str] = set()
    for row in doc["templates"]:
        t = Template(
            id=row["id"],
            cause=row["cause"],
            role=row["role"],
            src=row["src"],
            text=row["text"],
            follows=tuple(row.get("follows", ())),
            alone=row.get("alone", UNKNOWN),
        )
        if t.id in seen:
            raise CatalogError(f"templates.yaml: duplicate id {t.id!r}")
        seen.add(t.id)
        if t.role not in ROLES:
            raise CatalogError(f"{t.id}: role {t.role!r} is not one of {ROLES}")
        bad = [c for c in (t.cause, t.alone, *t.follows) if c not in causes]
        if bad:
            raise CatalogError(f"{t.id}: unknown root cause {bad[0]!r}")
        if t.role == "symptom" and not t.follows:
            raise CatalogError(f"{t.id}: a symptom needs `follows`")
        key = t.src.split(":", 1)[0]
        if key not in srcs:
            raise CatalogError(f"{t.id}: source {key!r} is not in sources.yaml")
        out.append(t)
    out.extend(xid_templates())
    return tuple(out)


def checked(t: Template) -> str:
    """How the row's wording was checked: `grep` (found at path:line in the snapshot), `path` (the emitting file in a
    searched or indexed repository at the cited commit), `docs` (vendor documentation)."""
    key, _, where = t.src.partition(":")
    level = sources()[key]["checked"]
    if level == "docs":
        return "docs"
    return "grep" if level == "grep" and re.search(r":\d+$", where) else "path"


def provenance(t: Template) -> str:
    key, _, where = t.src.partition(":")
    s = sources()[key]
    if "repo" in s:
        return f"{s['repo']}@{s['commit'][:12]}:{where} ({s['checked']})"
    return f"{s['doc']} ({where})"
