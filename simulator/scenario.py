"""Scenario files (YAML), validated with pydantic; a bad file names the field path and the reason."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from hpcmind.errors import UsageError
from hpcmind.taxonomy import root_cause_ids
from hpcmind.validation import first_error

_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(v: Any) -> float:
    """'90s', '10m', '6h', '1.5d' or a number of seconds."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str) and (m := _DUR.match(v)):
        return float(m[1]) * _UNIT[m[2]]
    raise ValueError(f"not a duration: {v!r} (use e.g. 90s, 10m, 6h)")


Duration = Annotated[float, BeforeValidator(parse_duration)]

GPU_MODELS: dict[str, tuple[str, int, float, float]] = {
    # key: (NVML name, framebuffer MiB, max power W, idle power W)
    "H100-80GB": ("NVIDIA H100 80GB HBM3", 81559, 700.0, 70.0),
    "A100-80GB": ("NVIDIA A100-SXM4-80GB", 81920, 400.0, 60.0),
    "A100-40GB": ("NVIDIA A100-SXM4-40GB", 40960, 400.0, 58.0),
    "H200": ("NVIDIA H200", 143771, 700.0, 75.0),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PartitionSpec(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    nodes: int = Field(ge=1, le=20000)
    node_prefix: str = Field("gpu-", pattern=r"^[A-Za-z0-9_.-]*$")
    name_digits: int = Field(3, ge=1, le=6)
    first_index: int = Field(1, ge=0)
    gpus_per_node: int = Field(8, ge=0, le=16)
    gpu_model: Literal["H100-80GB", "A100-80GB", "A100-40GB", "H200"] = "H100-80GB"
    nvswitch: bool = True
    cpus: int = Field(112, ge=1)
    memory_gb: int = Field(2048, ge=1)
    ib_hcas: int = Field(8, ge=0, le=16)
    nodes_per_leaf: int = Field(32, ge=1)
    priority_tier: int = Field(1, ge=0)


class FilesystemSpec(_Model):
    mountpoint: str = Field(pattern=r"^/")
    fstype: str = "lustre"
    device: str = "10.0.0.1@o2ib:/scratch"
    size_tb: float = Field(500.0, gt=0)
    shared: bool = True
    fill_fraction: float = Field(0.6, ge=0, lt=1)


class ClusterSpec(_Model):
    name: str = "hpcmind"
    partitions: list[PartitionSpec] = Field(min_length=1)
    filesystems: list[FilesystemSpec] = Field(
        default_factory=lambda: [
            FilesystemSpec(mountpoint="/lustre"),
            FilesystemSpec(
                mountpoint="/tmp", fstype="xfs", device="/dev/nvme0n1p1", size_tb=3.5, shared=False, fill_fraction=0.2
            ),
        ]
    )
    driver_version: str = "550.54.15"

    @model_validator(mode="after")
    def _unique(self) -> ClusterSpec:
        names = [p.name for p in self.partitions]
        if len(set(names)) != len(names):
            raise ValueError("partition names must be unique")
        prefixes = [(p.node_prefix, p.first_index) for p in self.partitions]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError("two partitions would produce the same node names (node_prefix + first_index)")
        return self


class WorkloadSpec(_Model):
    arrivals_per_hour: float = Field(12.0, ge=0)
    initial_utilisation: float = Field(0.7, ge=0, le=1)
    mix: dict[Literal["training", "inference", "short", "cpu"], float] = Field(
        default_factory=lambda: {"training": 0.45, "inference": 0.15, "short": 0.3, "cpu": 0.1}  # type: ignore[arg-type]
    )
    # Published traces: ~40% of GPU jobs end FAILED, mostly for user reasons (~10% of GPU time).
    user_failure_rate: float = Field(0.4, ge=0, le=1)
    mean_runtime: Duration = 3 * 3600.0
    # job ids count up from here (distinct ranges keep several simulated clusters apart in one Prometheus)
    first_job_id: int = Field(1000, ge=1)

    @model_validator(mode="after")
    def _mix(self) -> WorkloadSpec:
        if sum(self.mix.values()) <= 0:
            raise ValueError("mix needs at least one positive weight")
        return self


def _known_cause(v: Any) -> Any:
    if v not in root_cause_ids():
        raise ValueError(f"unknown root cause {v!r}")
    return v


RootCauseId = Annotated[str, BeforeValidator(_known_cause)]


class ScheduledFault(_Model):
    at: Duration
    root_cause: RootCauseId
    node: str | None = None
    gpu: int | None = Field(None, ge=0)
    variant: str | None = None


class RandomFaults(_Model):
    enabled: bool = True
    # Published failure studies: about 4 hardware faults per 1,000 node-days.
    hardware_per_1000_node_days: float = Field(4.0, ge=0)
    # Multiplies every rate, for demos where an incident every few minutes is wanted.
    time_compression: float = Field(1.0, gt=0)
    confounders_per_hour: float = Field(2.0, ge=0)


class FaultSpec(_Model):
    random: RandomFaults = RandomFaults()
    scheduled: list[ScheduledFault] = Field(default_factory=list)
    # Scales the cascade delays (NCCL's 600 s watchdog, drain after a health check); 1.0 is real life.
    cascade_scale: float = Field(1.0, gt=0, le=1)


class Scenario(_Model):
    name: str
    description: str = ""
    seed: int = 0
    start: datetime = datetime(2026, 11, 21, tzinfo=UTC)
    tick_seconds: float = Field(15.0, gt=0, le=300)
    duration: Duration | None = None
    cluster: ClusterSpec
    workload: WorkloadSpec = WorkloadSpec()
    faults: FaultSpec = FaultSpec()


def parse_scenario(data: Any, origin: str = "scenario") -> Scenario:
    if not isinstance(data, dict):
        raise UsageError(f"{origin}: expected a mapping at the top level")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"{origin}: {first_error(exc, 'scenario')}") from None


def load_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--scenario {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UsageError(f"{path}:{where} invalid YAML: {getattr(exc, 'problem', exc)}") from None
    return parse_scenario(data, str(path))


def builtin_scenario(name: str) -> Path:
    return Path(__file__).parent / "scenarios" / f"{name}.yaml"
