"""Host statistics from /proc under node_exporter's names (for nodes that run no node_exporter).

The /proc root is a constructor argument so tests feed a captured fixture tree.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from prometheus_client.metrics_core import Metric

from ..exposition import label_string
from ..families import FamilyBuilder


def _meminfo(text: str) -> dict[str, float]:
    out = {}
    for ln in text.splitlines():
        key, _, rest = ln.partition(":")
        parts = rest.split()
        if parts:
            out[key.strip()] = float(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def _psi_total(text: str, kind: str) -> float | None:
    for ln in text.splitlines():
        if ln.startswith(kind + " "):
            for f in ln.split():
                if f.startswith("total="):
                    return int(f[6:]) / 1e6  # microseconds
    return None


class ProcSource:
    name = "proc"

    def __init__(self, proc_root: Path = Path("/proc"), hostname: str | None = None) -> None:
        self.root = proc_root
        self.instance = f"{hostname or socket.gethostname()}:9100"

    def collect(self) -> Iterable[Metric]:
        fb = FamilyBuilder()
        lb = [label_string({"instance": self.instance})]
        mem = _meminfo((self.root / "meminfo").read_text())
        fb.add("node_memory_MemTotal_bytes", lb, np.array([mem["MemTotal"]]))
        fb.add("node_memory_MemAvailable_bytes", lb, np.array([mem.get("MemAvailable", mem.get("MemFree", 0.0))]))
        vm = dict(ln.split() for ln in (self.root / "vmstat").read_text().splitlines() if len(ln.split()) == 2)
        if "oom_kill" in vm:
            fb.add("node_vmstat_oom_kill", lb, np.array([float(vm["oom_kill"])]))
        for res, kind, name in (
            ("cpu", "some", "node_pressure_cpu_waiting_seconds_total"),
            ("memory", "full", "node_pressure_memory_stalled_seconds_total"),
            ("io", "full", "node_pressure_io_stalled_seconds_total"),
        ):
            p = self.root / "pressure" / res
            if p.exists():
                v = _psi_total(p.read_text(), kind)
                if v is not None:
                    fb.add(name, lb, np.array([v]))
        return fb.families()
