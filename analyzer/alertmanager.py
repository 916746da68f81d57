"""Alertmanager's webhook payload (version 4) as one typed model, shared by the webhook, the CLI and fixtures."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .rca.focus import JOB_LABELS
from .rca.metric_rules import host_of


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: str = Field(pattern="^(firing|resolved)$")
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1)

    @field_validator("labels")
    @classmethod
    def _alertname(cls, v: dict[str, str]) -> dict[str, str]:
        if "alertname" not in v:
            raise ValueError("labels must include alertname")
        return v

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    @property
    def host(self) -> str | None:
        return host_of(self.labels)

    @property
    def hosts(self) -> list[str]:
        nodes = [n for n in self.labels.get("nodes", "").split(",") if n]
        return ([self.host] if self.host else []) + [n for n in nodes if n != self.host]

    @property
    def job(self) -> str | None:
        return self.job_of(self.labels)

    @staticmethod
    def job_of(labels: dict[str, str]) -> str | None:
        return next((labels[k] for k in JOB_LABELS if labels.get(k)), None)

    @property
    def cluster(self) -> str:
        return self.labels.get("cluster", "default")

    @property
    def resolved(self) -> bool:
        return self.status == "resolved"


class AlertmanagerPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    version: str = Field(pattern="^4$")
    status: str = Field(pattern="^(firing|resolved)$")
    receiver: str = ""
    groupKey: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    truncatedAlerts: int = 0
    alerts: list[Alert] = Field(min_length=1)
