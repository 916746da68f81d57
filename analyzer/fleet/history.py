"""A unit's history and the correlation rules that read it: pure (the store gives the events)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

from hpcmind.contract import Alternative, Diagnosis
from hpcmind.taxonomy import root_cause_ids

from ..corpus.catalog import xid_rows

RULES = Path(__file__).with_name("rules.yaml")
LEVELS = ("reset", "drain", "rma")
Scope = Literal["gpu", "node"]


@dataclass(frozen=True)
class Event:
    """One diagnosed incident on a unit."""

    incident: int
    at: datetime
    cause: str
    node: str | None = None
    gpu: str | None = None
    job: str | None = None
    xids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Rule:
    id: str
    scope: Scope
    window: timedelta
    count: int
    source: str
    causes: frozenset[str] = frozenset()
    xid_buckets: frozenset[str] = frozenset()
    distinct: Literal["jobs", "gpus"] | None = None
    escalate: str | None = None
    reattribute: str | None = None

    def matches(self, e: Event) -> bool:
        by_cause = not self.causes or e.cause in self.causes
        by_xid = not self.xid_buckets or any(xid_bucket(x) in self.xid_buckets for x in e.xids)
        return by_cause and by_xid

    def unit(self, e: Event) -> str | None:
        if self.scope == "gpu":
            return f"GPU {e.gpu} on {e.node}" if e.node and e.gpu else None
        return e.node

    def same_unit(self, a: Event, b: Event) -> bool:
        return a.node == b.node and (self.scope == "node" or a.gpu == b.gpu)


@dataclass(frozen=True)
class Conclusion:
    rule: Rule
    unit: str
    count: int  # matching incidents in the window, this one included
    distinct: int
    first: datetime
    message: str

    def to_json(self) -> dict[str, Any]:
        r = self.rule
        return {
            "rule": r.id, "unit": self.unit, "count": self.count, "window_days": r.window / timedelta(days=1),
            "first": self.first.isoformat(), "escalate": r.escalate, "reattribute": r.reattribute,
            "message": self.message, "source": r.source,
        }  # fmt: skip


@cache
def xid_buckets() -> dict[int, str]:
    """Each catalogued Xid's immediate resolution (RESTART_APP, RESET_GPU, ...)."""
    return {int(r["code"]): r["immediate_resolution"] for r in xid_rows()}


def xid_bucket(code: int) -> str:
    return xid_buckets().get(code, "")


def _days(v: str) -> timedelta:
    if not v.endswith(("d", "h")) or not v[:-1].isdigit():
        raise ValueError(f"window {v!r}: a number of days or hours, like 7d or 12h")
    return timedelta(days=int(v[:-1])) if v.endswith("d") else timedelta(hours=int(v[:-1]))


@cache
def rules() -> tuple[Rule, ...]:
    out = []
    known = set(root_cause_ids())
    for r in yaml.safe_load(RULES.read_text())["rules"]:
        m, then = r.get("match", {}), r.get("then", {})
        rule = Rule(
            id=r["id"], scope=r["scope"], window=_days(r["window"]), count=int(r["count"]), source=r["source"],
            causes=frozenset(m.get("causes", [])), xid_buckets=frozenset(m.get("xid_bucket", [])),
            distinct=r.get("distinct"), escalate=then.get("escalate"), reattribute=then.get("reattribute"),
        )  # fmt: skip
        bad = (rule.causes | ({rule.reattribute} if rule.reattribute else set())) - known
        if bad or rule.scope not in ("gpu", "node") or (rule.escalate and rule.escalate not in LEVELS):
            raise ValueError(f"{RULES.name}: rule {rule.id}: unknown cause {sorted(bad)}, scope or escalation")
        if not (rule.causes or rule.xid_buckets) or not rule.source:
            raise ValueError(f"{RULES.name}: rule {rule.id} matches everything or cites no source")
        out.append(rule)
    return tuple(out)


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def evaluate(event: Event, past: list[Event], rs: tuple[Rule, ...] | None = None) -> list[Conclusion]:
    """The rules this incident completes, given the unit's earlier incidents (any order, this one excluded)."""
    out = []
    for r in rs if rs is not None else rules():
        unit = r.unit(event)
        if unit is None or not r.matches(event):
            continue
        hits = [e for e in past if e.incident != event.incident and r.same_unit(e, event) and r.matches(e)]
        hits = [e for e in hits if event.at - r.window <= e.at <= event.at] + [event]
        distinct = len({e.job if r.distinct == "jobs" else e.gpu for e in hits}) if r.distinct else len(hits)
        if len(hits) < r.count or distinct < r.count:
            continue
        days = r.window / timedelta(days=1)
        what = f"{_ordinal(len(hits))} {_what(r)} in {days:g} days"
        spread = f" across {distinct} {r.distinct}" if r.distinct else ""
        first = min(e.at for e in hits)
        msg = f"{unit}: {what}{spread}, the first on {first:%Y-%m-%d %H:%M}"
        out.append(Conclusion(r, unit, len(hits), distinct, first, msg))
    return out


def _what(r: Rule) -> str:
    if r.causes:
        return "/".join(sorted(r.causes)) + " incident"
    return f"{'/'.join(sorted(r.xid_buckets))} Xid"


ESCALATION = {
    "reset": "Reset the GPU (nvidia-smi -r) before it takes another job",
    "drain": "Drain the node until the hardware passes `dcgmi diag -r 3`",
    "rma": "Open a hardware (RMA) ticket: the fault recurs",
}


def apply(d: Diagnosis, found: list[Conclusion]) -> Diagnosis:
    """The diagnosis read with its history: re-attributed where a rule says so, the strongest escalation first in
    the remediation, each conclusion in the evidence, confidence raised by what corroborates it."""
    if not found:
        return d
    upd: dict[str, Any] = {}
    cause, alts = d.root_cause, list(d.alternatives)
    for c in found:
        if c.rule.reattribute and c.rule.reattribute != cause:
            alts = [Alternative(root_cause=cause, confidence=d.confidence), *alts]
            upd["summary"] = f"{c.rule.reattribute} (re-attributed from {cause}: {c.message}). {d.summary}"
            cause = c.rule.reattribute
    upd["root_cause"], upd["alternatives"] = cause, [a for a in alts if a.root_cause != cause][:5]
    levels = [c.rule.escalate for c in found if c.rule.escalate]
    top = max(levels, key=LEVELS.index) if levels else None
    steps = [f"{ESCALATION[top]} ({next(c.message for c in found if c.rule.escalate == top)})"] if top else []
    upd["remediation"] = [*steps, *(s for s in d.remediation if s not in steps)]
    upd["evidence"] = [*(f"history: {c.message} [{c.rule.id}]" for c in found), *d.evidence]
    upd["confidence"] = round(min(0.99, d.confidence + 0.1 * len(found)), 4)
    return d.model_copy(update=upd)


def unit_summary(event: Event, past: list[Event], window: timedelta = timedelta(days=30)) -> list[str]:
    """What the page shows: each unit's incidents in the last `window`, by cause."""
    out = []
    for scope, unit in (("gpu", f"GPU {event.gpu} on {event.node}" if event.gpu and event.node else None),
                        ("node", event.node)):  # fmt: skip
        if unit is None:
            continue
        same = [e for e in past if e.node == event.node and (scope == "node" or e.gpu == event.gpu)]
        same = [e for e in same if e.incident != event.incident and event.at - window <= e.at <= event.at]
        if same:
            counts = Counter(e.cause for e in same)
            by = ", ".join(f"{c} ×{n}" for c, n in counts.most_common())
            out.append(
                f"{unit}: {len(same)} earlier incident{'s' if len(same) > 1 else ''} in {window.days} days ({by})"
            )
    return out
