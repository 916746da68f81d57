"""NVIDIA Xid codes: parsing kernel lines and mapping codes to root causes.

Mapping follows NVIDIA's Xid catalogue (shared/reference/gpu-cluster-signals.md §1.2). Sympathetic
codes (43, 45, 154) are weak: they follow another Xid and name no cause of their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# code -> (root cause, weight)
XID_CAUSES: dict[int, tuple[str, float]] = {
    79: ("gpu_hardware_fault", 13),
    62: ("gpu_hardware_fault", 11),
    61: ("gpu_hardware_fault", 8),
    46: ("gpu_hardware_fault", 9),
    109: ("gpu_hardware_fault", 8),
    119: ("gpu_hardware_fault", 9),
    120: ("gpu_hardware_fault", 9),
    143: ("gpu_hardware_fault", 11),
    158: ("gpu_hardware_fault", 10),
    8: ("gpu_hardware_fault", 6),
    32: ("gpu_hardware_fault", 6),
    121: ("gpu_hardware_fault", 6),
    48: ("gpu_memory_error", 13),
    63: ("gpu_memory_error", 9),
    64: ("gpu_memory_error", 12),
    92: ("gpu_memory_error", 6),
    94: ("gpu_memory_error", 12),
    95: ("gpu_memory_error", 12),
    140: ("gpu_memory_error", 12),
    156: ("gpu_memory_error", 9),
    157: ("gpu_memory_error", 10),
    171: ("gpu_memory_error", 12),
    172: ("gpu_memory_error", 12),
    74: ("nvlink_error", 13),
    136: ("nvlink_error", 11),
    144: ("nvlink_error", 11),
    145: ("nvlink_error", 11),
    146: ("nvlink_error", 11),
    147: ("nvlink_error", 11),
    148: ("nvlink_error", 11),
    149: ("nvlink_error", 11),
    150: ("nvlink_error", 11),
    155: ("nvlink_error", 10),
    13: ("software_error", 5),
    31: ("software_error", 5),
    43: ("software_error", 2),
    68: ("software_error", 3),
    69: ("software_error", 3),
    45: ("gpu_hardware_fault", 1),
    154: ("gpu_hardware_fault", 1),
}
SYMPATHETIC = frozenset({43, 45, 154})

_KERNEL_XID = re.compile(
    r"Xid \((?P<pci>(?:PCI:)?[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}(?:\.\d)?)[^)]*\):\s*(?P<code>\d+)\b"
)
_TEXT_XID = re.compile(r"\bXid(?:[ _-]?(?:error|code))?\s*[=:#]?\s*(?P<code>\d{1,3})\b", re.IGNORECASE)
_NONFATAL_NVLINK5 = re.compile(r"\bNonfatal\b")


@dataclass(frozen=True)
class XidEvent:
    code: int
    pci: str | None


def parse_xids(line: str) -> list[XidEvent]:
    out = [XidEvent(int(m["code"]), _norm_pci(m["pci"])) for m in _KERNEL_XID.finditer(line)]
    if not out:
        out = [XidEvent(int(m["code"]), None) for m in _TEXT_XID.finditer(line)]
    # NVLink5 (144-150) "Nonfatal" rows are ignorable per NVIDIA's decode sheet.
    if _NONFATAL_NVLINK5.search(line):
        out = [x for x in out if not 144 <= x.code <= 150]
    return out


def _norm_pci(pci: str) -> str:
    return pci if pci.startswith("PCI:") else "PCI:" + pci


def xid_cause(code: int) -> tuple[str, float] | None:
    return XID_CAUSES.get(code)
