"""Real GPUs through NVML (pynvml from nvidia-ml-py), emitted under dcgm-exporter's names and labels.

Selected at run time: on a machine without an NVIDIA driver, `NvmlSource()` raises NvmlUnavailable with the reason.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.metrics_core import Metric

from ..exposition import label_string
from ..families import FamilyBuilder
from ..jobmap import attribute, read_job_mapping


class NvmlUnavailable(RuntimeError):
    pass


@dataclass
class GpuReading:
    index: int
    uuid: str
    name: str
    bus_id: str
    util: float
    fb_used_mib: float
    fb_free_mib: float
    temp: float
    power_w: float
    sm_clock: float
    mem_clock: float
    throttle: int
    energy_mj: float
    sbe: float | None
    dbe: float | None


def readings_families(
    readings: list[GpuReading], hostname: str, driver: str, mapping: dict[str, list[str]]
) -> Iterable[Metric]:
    """Pure transform: NVML readings -> dcgm-exporter families (with the job-mapping transform applied)."""
    fb = FamilyBuilder()
    base = [
        {
            "gpu": str(r.index),
            "UUID": r.uuid,
            "pci_bus_id": r.bus_id,
            "device": f"nvidia{r.index}",
            "modelName": r.name,
            "Hostname": hostname,
            "DCGM_FI_DRIVER_VERSION": driver,
        }
        for r in readings
    ]
    fields: list[tuple[str, list[float | None]]] = [
        ("DCGM_FI_DEV_GPU_UTIL", [r.util for r in readings]),
        ("DCGM_FI_DEV_FB_USED", [r.fb_used_mib for r in readings]),
        ("DCGM_FI_DEV_FB_FREE", [r.fb_free_mib for r in readings]),
        ("DCGM_FI_DEV_GPU_TEMP", [r.temp for r in readings]),
        ("DCGM_FI_DEV_POWER_USAGE", [r.power_w for r in readings]),
        ("DCGM_FI_DEV_SM_CLOCK", [r.sm_clock for r in readings]),
        ("DCGM_FI_DEV_MEM_CLOCK", [r.mem_clock for r in readings]),
        ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", [float(r.throttle) for r in readings]),
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", [r.energy_mj for r in readings]),
        ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", [r.sbe for r in readings]),
        ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", [r.dbe for r in readings]),
    ]
    for name, vals in fields:
        labels, values = [], []
        for lb, v in zip(base, vals, strict=True):
            if v is None:  # ECC off or field unsupported: dcgm-exporter omits the series
                continue
            for attributed in attribute([lb], mapping):
                labels.append(label_string(attributed))
                values.append(float(v))
        fb.add(name, labels, np.array(values))
    return fb.families()


class NvmlSource:
    name = "nvml"

    def __init__(self, job_mapping_dir: Path | None = None) -> None:
        try:
            import pynvml  # type: ignore[import-not-found]

            pynvml.nvmlInit()
        except Exception as exc:
            hint = " (pip install -e '.[nvml]')" if isinstance(exc, ImportError) else ""
            raise NvmlUnavailable(f"NVML not available: {type(exc).__name__}: {exc}{hint}") from None
        self.nvml: Any = pynvml
        self.hostname = socket.gethostname()
        self.driver = str(pynvml.nvmlSystemGetDriverVersion())
        self.mapping_dir = job_mapping_dir

    def read(self) -> list[GpuReading]:
        n = self.nvml
        out = []
        for i in range(n.nvmlDeviceGetCount()):
            h = n.nvmlDeviceGetHandleByIndex(i)
            mem = n.nvmlDeviceGetMemoryInfo(h)

            def ecc(kind: int, h: Any = h) -> float | None:
                try:
                    return float(n.nvmlDeviceGetTotalEccErrors(h, kind, n.NVML_VOLATILE_ECC))
                except n.NVMLError:
                    return None

            out.append(
                GpuReading(
                    index=i,
                    uuid=str(n.nvmlDeviceGetUUID(h)),
                    name=str(n.nvmlDeviceGetName(h)),
                    bus_id=str(n.nvmlDeviceGetPciInfo(h).busId),
                    util=float(n.nvmlDeviceGetUtilizationRates(h).gpu),
                    fb_used_mib=mem.used / 2**20,
                    fb_free_mib=mem.free / 2**20,
                    temp=float(n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU)),
                    power_w=n.nvmlDeviceGetPowerUsage(h) / 1000.0,
                    sm_clock=float(n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM)),
                    mem_clock=float(n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM)),
                    throttle=int(n.nvmlDeviceGetCurrentClocksThrottleReasons(h)),
                    energy_mj=float(n.nvmlDeviceGetTotalEnergyConsumption(h)),
                    sbe=ecc(n.NVML_MEMORY_ERROR_TYPE_CORRECTED),
                    dbe=ecc(n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
                )
            )
        return out

    def collect(self) -> Iterable[Metric]:
        mapping = read_job_mapping(self.mapping_dir) if self.mapping_dir else {}
        return readings_families(self.read(), self.hostname, self.driver, mapping)
