"""Actions against the store: proposed after a diagnosis, decided by the mode, the breaker or an operator, run
through Slurm; every step is a row in the actions log (the audit) and a count in `hpcmind_actions_total`."""

from __future__ import annotations

import logging
import re
import threading
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import and_, func, select, update

from hpcmind.contract import Diagnosis
from hpcmind.settings import Settings

from ..store import Store, actions, incidents, now
from .policy import KINDS, Kind, Limits, Node, Verdict, check, initial_state, reason_text
from .slurm import SlurmControl, SlurmError

log = logging.getLogger("hpcmind.actions")
PLANS = Path(__file__).with_name("plans.yaml")
TARGET = re.compile(r"[\w.\-\[\],]{1,200}")  # what Slurm's node names and job ids are made of


class ActionError(ValueError):
    """A request the actions log refuses (unknown action, wrong state, actions off); the message says why."""


class ActionNotFound(LookupError):
    pass


@cache
def plans() -> dict[str, tuple[Kind, ...]]:
    rows = yaml.safe_load(PLANS.read_text())["plans"]
    out: dict[str, tuple[Kind, ...]] = {}
    for r in rows:
        bad = [k for k in r["actions"] if k not in KINDS]
        if bad or not r.get("source"):
            raise ValueError(f"{PLANS.name}: {r['cause']}: unknown actions {bad} or no source")
        out[r["cause"]] = tuple(r["actions"])
    return out


class ActionService:
    def __init__(self, settings: Settings, store: Store, registry: CollectorRegistry | None = None) -> None:
        self.s = settings.actions
        self.store = store
        self.control = SlurmControl(self.s)
        self.limits = Limits(self.s.max_drain_share, self.s.max_drains, self.s.keep_last_node)
        self._lock = threading.Lock()  # one action runs at a time: the breaker counts what is done
        self.counter = Counter(
            "hpcmind_actions", "Slurm actions by kind and outcome.", ["kind", "outcome"], registry=registry
        )

    @property
    def mode(self) -> str:
        return self.s.mode

    # ---------------------------------------------------------------- proposals
    def after_diagnosis(self, iid: int, d: Diagnosis) -> list[int]:
        """Propose (and in auto, run) what the diagnosis calls for; an action already on the incident is kept."""
        if self.mode == "off":
            return []
        wanted: list[tuple[Kind, str]] = []
        for kind in plans().get(d.root_cause, ()):
            target = d.culprit.node if kind == "drain" else d.culprit.job
            if target:
                wanted.append((kind, target))
        detail = " ".join(
            x for x in (f"GPU {d.culprit.gpu}" if d.culprit.gpu else "", d.culprit.job and f"job {d.culprit.job}") if x
        )
        ids = []
        for kind, target in wanted:
            aid = self._propose(iid, kind, target, reason_text(iid, d.root_cause, detail or ""), "hpcmind")
            if aid is not None:
                ids.append(aid)
        return ids

    def request(self, kind: str, target: str, by: str, incident: int | None = None, reason: str = "") -> int:
        """An operator's own request (API, page, MCP): in approve and auto it runs now, the request being its own
        approval; in dry-run it is recorded only."""
        if kind not in KINDS:
            raise ActionError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
        if not TARGET.fullmatch(target):
            raise ActionError(f"target: {target[:60]!r} is not a node name or job id (1-200 of \\w . - [ ] ,)")
        if self.mode == "off":
            raise ActionError("actions are off (HPCMIND_ACTIONS__MODE=off)")
        with self.store.tx() as c:
            if (
                incident is not None
                and c.execute(select(incidents.c.id).where(incidents.c.id == incident)).first() is None
            ):
                raise ActionNotFound(f"no incident {incident}")
        text = reason_text(incident, "operator request", reason) if kind == "drain" else reason or f"requested by {by}"
        aid = self._insert(incident, kind, target, text, by, operator=True)
        if aid is None:  # an operator's duplicate raises instead
            raise ActionError(f"{kind} {target}: not recorded")
        if self.mode == "dry-run":
            self._preview(aid)
        else:
            self._run(aid, by)
        return aid

    def _propose(self, iid: int, kind: Kind, target: str, reason: str, by: str) -> int | None:
        aid = self._insert(iid, kind, target, reason, by, operator=False)
        if aid is None:
            return None
        if self.mode == "auto":
            self._run(aid, "auto")
        else:
            self._preview(aid)
        return aid

    def _insert(self, iid: int | None, kind: str, target: str, reason: str, by: str, *, operator: bool) -> int | None:
        """A new row, or None for a proposal the incident already has. An operator's request naming an incident
        that already has it is refused; one naming none may repeat (a node resumed twice in a week)."""
        with self.store.tx() as c:
            if not operator or iid is not None:
                dup = c.execute(
                    select(actions.c.id).where(
                        and_(actions.c.incident_id == iid, actions.c.kind == kind, actions.c.target == target)
                    )
                ).first()
                if dup is not None:
                    if operator:
                        raise ActionError(f"incident {iid} already has action {dup.id} ({kind} {target})")
                    return None
            r = c.execute(
                actions.insert().values(
                    incident_id=iid,
                    kind=kind,
                    target=target,
                    reason=reason,
                    mode=self.mode,
                    state="proposed",
                    detail="",
                    requested_by=by[:100],
                    created_at=now(),
                )
            )
            pk = r.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    # ---------------------------------------------------------------- decisions
    def approve(self, aid: int, by: str) -> dict[str, Any]:
        """Run an action awaiting approval. One the breaker refuses now keeps waiting (the refusal is the error)."""
        self._expect(aid, "awaiting_approval", "approve")
        why = self._run(aid, by, keep_waiting=True)
        if why:
            raise ActionError(f"action {aid} not run: {why}")
        return self.get(aid)

    def reject(self, aid: int, by: str) -> dict[str, Any]:
        self._expect(aid, "awaiting_approval", "reject")
        self._finish(aid, "rejected", f"rejected by {by}", by)
        return self.get(aid)

    def _expect(self, aid: int, state: str, verb: str) -> None:
        row = self.get(aid)
        if row["state"] != state:
            raise ActionError(f"action {aid} is {row['state']}: only an action awaiting approval can be {verb}d")

    def _preview(self, aid: int) -> None:
        """dry-run and approve: record what the breaker would say now (approve checks again when it runs)."""
        row = self.get(aid)
        try:
            v = self._verdict(row)
        except SlurmError as exc:
            v = Verdict(False, f"cannot read the cluster: {exc}")
        state = initial_state(self.mode, v)
        word = "would run" if v.allowed else "would be refused"
        self._finish(aid, state, f"{word}: {v.why}", None)

    def _run(self, aid: int, by: str, keep_waiting: bool = False) -> str:
        """Check the breaker and act; returns why it did not run when `keep_waiting` left it awaiting approval."""
        with self._lock:
            row = self.get(aid)
            try:
                v = self._verdict(row)
            except SlurmError as exc:
                v = Verdict(False, f"cannot read the cluster: {exc}")
            if not v.allowed and keep_waiting:
                with self.store.tx() as c:
                    c.execute(update(actions).where(actions.c.id == aid).values(detail=f"not run yet: {v.why}"[:2000]))
                return v.why
            if not v.allowed:
                self._finish(aid, "failed" if v.why.startswith("cannot read") else "refused", v.why, by)
                return ""
            try:
                if row["kind"] == "drain":
                    self.control.drain(row["target"], row["reason"])
                elif row["kind"] == "resume":
                    self.control.resume(row["target"])
                else:
                    self.control.requeue(row["target"])
            except SlurmError as exc:
                self._finish(aid, "failed", str(exc), by)
                return ""
            self._finish(aid, "done", v.why, by)
            return ""

    def _verdict(self, row: dict[str, Any]) -> Verdict:
        kind: Kind = row["kind"]
        if kind == "requeue" and row["incident_id"] is not None:
            # a job requeued while its node still takes jobs could start there again
            with self.store.tx() as c:
                drain = c.execute(
                    select(actions.c.state, actions.c.target).where(
                        and_(actions.c.incident_id == row["incident_id"], actions.c.kind == "drain")
                    )
                ).first()
            if drain is not None and drain.state == "dry_run":  # what dry-run would do: both, in this order
                return Verdict(True, f"requeue job {row['target']} after the drain of {drain.target}")
            if drain is not None and drain.state != "done":
                return Verdict(False, f"the drain of {drain.target} is {drain.state}: requeue after it is drained")
            return check(kind, row["target"], {}, 0, self.limits)
        nodes: dict[str, Node] = self.control.nodes()
        return check(kind, row["target"], nodes, self._recent_drains(), self.limits)

    def _recent_drains(self) -> int:
        since = now() - timedelta(seconds=self.s.window_s)
        with self.store.tx() as c:
            n = c.execute(
                select(func.count()).where(
                    and_(actions.c.kind == "drain", actions.c.state == "done", actions.c.decided_at >= since)
                )
            ).scalar()
        return int(n or 0)

    def _finish(self, aid: int, state: str, detail: str, by: str | None) -> None:
        with self.store.tx() as c:
            c.execute(
                update(actions)
                .where(actions.c.id == aid)
                .values(state=state, detail=detail[:2000], decided_by=by and by[:100], decided_at=now())
            )
            kind = c.execute(select(actions.c.kind).where(actions.c.id == aid)).scalar()
        self.counter.labels(str(kind), state).inc()
        (log.warning if state in ("refused", "failed") else log.info)("action %d %s %s: %s", aid, kind, state, detail)

    # ---------------------------------------------------------------- queries
    def get(self, aid: int) -> dict[str, Any]:
        with self.store.tx() as c:
            r = c.execute(select(actions).where(actions.c.id == aid)).first()
        if r is None:
            raise ActionNotFound(f"no action {aid}")
        return _row(r._mapping)

    def for_incident(self, iid: int) -> list[dict[str, Any]]:
        q = select(actions).where(actions.c.incident_id == iid).order_by(actions.c.id)
        with self.store.tx() as c:
            return [_row(r._mapping) for r in c.execute(q).all()]

    def recent(self, limit: int = 100, state: str | None = None) -> list[dict[str, Any]]:
        q = select(actions).order_by(actions.c.id.desc()).limit(limit)
        if state:
            q = q.where(actions.c.state == state)
        with self.store.tx() as c:
            return [_row(r._mapping) for r in c.execute(q).all()]


def _row(m: Any) -> dict[str, Any]:
    out = dict(m)
    for k in ("created_at", "decided_at"):
        out[k] = out[k].isoformat() if out[k] else None
    return out
