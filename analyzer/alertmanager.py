"""Alertmanager's webhook payload (version 4) as one typed model, shared by the webhook, the CLI and fixtures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .intake import MAX_ANNOTATION, MAX_HOST, MAX_ID, MAX_LABEL_VALUE, MAX_NAME, clean, clean_map, key
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

    @field_validator("labels", mode="before")
    @classmethod
    def _clean_labels(cls, v: Any) -> Any:
        return clean_map(v, MAX_LABEL_VALUE)

    @field_validator("annotations", mode="before")
    @classmethod
    def _clean_annotations(cls, v: Any) -> Any:
        return clean_map(v, MAX_ANNOTATION)

    @field_validator("labels")
    @classmethod
    def _alertname(cls, v: dict[str, str]) -> dict[str, str]:
        if "alertname" not in v:
            raise ValueError("labels must include alertname")
        for k in ("alertname", "cluster"):  # stored in String(200) columns
            if k in v:
                v[k] = clean(v[k], MAX_NAME)
        return v

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, v: str) -> str:
        return key(v, MAX_ID)

    @field_validator("generatorURL")
    @classmethod
    def _url(cls, v: str) -> str:
        return clean(v, 2048)

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    @property
    def host(self) -> str | None:
        h = host_of(self.labels)
        return h if h and _entity(h, MAX_HOST) else None

    @property
    def hosts(self) -> list[str]:
        nodes = [n for n in self.labels.get("nodes", "").split(",") if _entity(n, MAX_HOST)]
        return ([self.host] if self.host else []) + [n for n in nodes if n != self.host]

    @property
    def job(self) -> str | None:
        return self.job_of(self.labels)

    @staticmethod
    def job_of(labels: dict[str, str]) -> str | None:
        return next((labels[k] for k in JOB_LABELS if _entity(labels.get(k, ""), MAX_ID)), None)

    @property
    def cluster(self) -> str:
        return self.labels.get("cluster", "default")

    @property
    def resolved(self) -> bool:
        return self.status == "resolved"


def _entity(name: str, limit: int) -> bool:
    """A node or job name HPCMind can key incidents and queries by (a clamped or blank-laden value is none)."""
    return 0 < len(name) <= limit and not any(c.isspace() or c in "\ufffd…" for c in name)


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
