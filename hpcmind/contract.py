"""The diagnose contract: an evidence bundle in, a diagnosis out (shared/spec/diagnose-contract.md)."""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from .validation import first_error


class BundleError(ValueError):
    """A malformed evidence bundle; the message names the offending field."""


class _Lenient(BaseModel):
    # The contract says unknown keys are ignored.
    model_config = ConfigDict(extra="ignore")


class AlertEvidence(_Lenient):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = None
    endsAt: str | None = None
    status: str | None = None

    @field_validator("labels", "annotations", mode="before")
    @classmethod
    def _stringify(cls, v: Any) -> Any:
        # Label values are strings in Prometheus; accept numbers from hand-written bundles.
        if isinstance(v, dict):
            return {
                str(k): ("" if x is None else str(x)) if not isinstance(x, dict | list) else x for k, x in v.items()
            }
        return v


class JobEvidence(_Lenient):
    id: str | None = None
    name: str | None = None
    state: str | None = None
    exit_code: str | None = None
    nodes: list[str] = Field(default_factory=list)
    reason: str | None = None
    user: str | None = None
    partition: str | None = None
    time_limit: str | None = None  # as sacct/scontrol print it (00:20:00), or minutes as in Slurm's JSON
    elapsed: str | None = None

    @field_validator("id", "exit_code", mode="before")
    @classmethod
    def _num_to_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("time_limit", "elapsed", mode="before")
    @classmethod
    def _duration(cls, v: Any, info: ValidationInfo) -> Any:
        # Slurm's JSON: time_limit in minutes (bare or {"set": true, "number": N}), elapsed in seconds
        if isinstance(v, dict) and "number" in v:
            v = v["number"] if v.get("set", True) and not v.get("infinite") else None
        if isinstance(v, int | float) and not isinstance(v, bool):
            s = int(v) * 60 if info.field_name == "time_limit" else int(v)
            return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
        return v

    @field_validator("nodes", mode="before")
    @classmethod
    def _nodes(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class LogLine(_Lenient):
    line: str
    source: str | None = None
    ts: str | float | None = None


MAX_TS = 32503680000.0  # year 3000 in Unix seconds: beyond it no clock can be shown


class MetricSeries(_Lenient):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    values: list[tuple[float, float]] = Field(default_factory=list)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): str(x) for k, x in v.items()}
        return v

    @field_validator("values", mode="before")
    @classmethod
    def _values(cls, v: Any) -> Any:
        # Prometheus returns sample values as strings ("NaN", "97.5").
        if isinstance(v, list):
            return [
                [p[0], float(p[1])] if isinstance(p, list | tuple) and len(p) == 2 and isinstance(p[1], str) else p
                for p in v
            ]
        return v

    @field_validator("values")
    @classmethod
    def _timestamps(cls, v: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for ts, _ in v:
            if not (math.isfinite(ts) and 0 <= ts < MAX_TS):
                raise ValueError(f"sample timestamp {ts!r}: expected Unix seconds between 0 and {MAX_TS:.0f}")
        return v


class EvidenceBundle(_Lenient):
    alert: AlertEvidence | None = None
    job: JobEvidence | None = None
    logs: list[LogLine] = Field(default_factory=list)
    metrics: list[MetricSeries] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _not_empty(cls, data: Any) -> Any:
        if isinstance(data, dict) and not any(data.get(k) is not None for k in ("alert", "job", "logs", "metrics")):
            raise ValueError("bundle has none of alert, job, logs, metrics")
        return data


class Culprit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node: str | None = None
    gpu: str | None = None
    job: str | None = None


class Alternative(BaseModel):
    root_cause: str
    confidence: float


class Diagnosis(BaseModel):
    root_cause: str
    confidence: float
    culprit: Culprit = Field(default_factory=Culprit)
    summary: str
    explanation: str
    remediation: list[str]
    evidence: list[str]
    alternatives: list[Alternative] = Field(default_factory=list)
    model: str
    latency_ms: float
    missing_evidence: list[str] = Field(default_factory=list)

    def to_json_dict(self) -> dict[str, Any]:
        data = self.model_dump()
        data["culprit"] = {k: v for k, v in data["culprit"].items() if v is not None}
        return data


def parse_bundle(data: Any) -> EvidenceBundle:
    """Validate decoded JSON as an evidence bundle, raising BundleError naming the field."""
    if not isinstance(data, dict):
        raise BundleError(f"bundle: expected a JSON object, got {type(data).__name__}")
    try:
        return EvidenceBundle.model_validate(data)
    except ValidationError as exc:
        raise BundleError(first_error(exc, "bundle")) from None


def parse_bundle_text(text: str) -> EvidenceBundle:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"bundle: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    return parse_bundle(data)
