"""What the analyzer accepts, made storable: every string the webhook or log ingest takes in fits its column.

Clamping, not rejecting: one NUL byte or one 70 kB label must not cost the good alerts or lines beside it (a 4xx
makes Alertmanager drop the whole group, and the collector drops the whole batch). NUL becomes U+FFFD (PostgreSQL
text cannot hold it); an over-long value keeps its head and says how much was cut; an over-long key that must stay
unique (fingerprint, log id) is replaced by its SHA-256.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_LABEL_VALUE = 4096
MAX_ANNOTATION = 16_384
MAX_KEY = 256
MAX_LOG_LINE = 65_536
MAX_NAME = 200  # alertname, cluster: String(200) columns
MAX_ID = 64  # fingerprint, log id: String(64)
MAX_SOURCE = 300
MAX_HOST = 253  # a DNS name; a longer "host" label names no node


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL (PostgreSQL) and lone surrogates (no UTF-8 for them)


def clean(s: str, limit: int) -> str:
    s = _UNSTORABLE.sub("\ufffd", s)
    if len(s) <= limit:
        return s
    tail = f"…[+{len(s) - limit} chars]"
    return s[: max(0, limit - len(tail))] + tail


def key(s: str, limit: int = MAX_ID) -> str:
    """A unique key that fits: itself, or its SHA-256 when too long or not printable."""
    if len(s) <= limit and not _UNSTORABLE.search(s):
        return s
    return hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()[:limit]


def clean_map(v: Any, value_limit: int) -> Any:
    if not isinstance(v, dict):
        return v
    out: dict[str, Any] = {}
    for k, x in v.items():
        if isinstance(x, str):
            x = clean(x, value_limit)
        out[clean(str(k), MAX_KEY)] = x
    return out


class LogLineIn(BaseModel):
    """One shipped line. Clamped to fit, never rejected for its content: the rest of its batch must land."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=4096)
    ts: str | None = None
    source: str = "unknown"
    line: str

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return key(v)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        return clean(v, MAX_SOURCE)

    @field_validator("line")
    @classmethod
    def _line(cls, v: str) -> str:
        return clean(v, MAX_LOG_LINE)

    @field_validator("ts")
    @classmethod
    def _ts(cls, v: str | None) -> str | None:
        """An unreadable time becomes the receive time (the line is kept)."""
        if v is None:
            return None
        try:
            datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return None
        return v


def log_lines_in(records: list[object]) -> tuple[list[dict[str, Any]], int]:
    """Records from a bus that validates nothing (Kafka): the storable lines, and how many were not lines at all."""
    out, bad = [], 0
    for r in records:
        try:
            out.append(LogLineIn.model_validate(r).model_dump())
        except ValidationError:
            bad += 1
    return out, bad
