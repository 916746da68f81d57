"""The modes and the breaker: pure decisions over a view of the cluster and the recent actions log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["drain", "resume", "requeue"]
KINDS: tuple[Kind, ...] = ("drain", "resume", "requeue")
# a node in any of these is not taking jobs
UNAVAILABLE = frozenset({"DRAIN", "DRAINED", "DRAINING", "DOWN", "FAIL", "FAILING", "MAINT", "FUTURE"})
# what HPCMind writes as a node's drain reason; a node drained by someone else is never resumed by it
REASON_PREFIX = "hpcmind"


@dataclass(frozen=True)
class Node:
    name: str
    states: frozenset[str]  # sinfo's state and state flags, upper-case: {"IDLE", "DRAIN"}
    partitions: tuple[str, ...]
    reason: str = ""

    @property
    def available(self) -> bool:
        return not (self.states & UNAVAILABLE)


@dataclass(frozen=True)
class Limits:
    max_drain_share: float = 0.10
    max_drains: int = 2
    keep_last_node: bool = True


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    why: str


def check(kind: Kind, target: str, nodes: dict[str, Node], recent_drains: int, limits: Limits) -> Verdict:
    """Whether the breaker lets `kind` on `target` run now. `recent_drains`: drains done within the window."""
    if kind == "requeue":
        return Verdict(True, f"requeue job {target}")
    node = nodes.get(target)
    if node is None:
        return Verdict(False, f"Slurm knows no node {target}")
    if kind == "resume":
        if node.available:
            return Verdict(False, f"{target} is not drained")
        if not node.reason.startswith(REASON_PREFIX):
            return Verdict(
                False, f"{target} was drained by someone else ({node.reason or 'no reason'}): resume it by hand"
            )
        return Verdict(True, f"resume {target}")
    if not node.available:
        return Verdict(False, f"{target} is already out of service ({'+'.join(sorted(node.states))})")
    if recent_drains >= limits.max_drains:
        return Verdict(False, f"breaker: {recent_drains} drains already in the window (at most {limits.max_drains})")
    out_after = sum(1 for n in nodes.values() if not n.available) + 1
    if out_after > limits.max_drain_share * len(nodes):
        return Verdict(
            False,
            f"breaker: {out_after} of {len(nodes)} nodes would be out of service "
            f"(at most {limits.max_drain_share:.0%})",
        )
    if limits.keep_last_node:
        for p in node.partitions:
            left = [n for n in nodes.values() if p in n.partitions and n.available and n.name != target]
            if not left:
                return Verdict(False, f"breaker: {target} is the last available node of partition {p}")
    return Verdict(True, f"drain {target}")


def initial_state(mode: str, verdict: Verdict) -> str:
    """Where a proposed action starts: in dry-run it is only recorded, in approve it waits, in auto it runs (or
    the breaker refuses it)."""
    if mode == "dry-run":
        return "dry_run"
    if mode == "approve":
        return "awaiting_approval"
    return "running" if verdict.allowed else "refused"


def reason_text(incident: int | None, cause: str, detail: str) -> str:
    """The drain reason Slurm shows (`scontrol show node`): names HPCMind, the incident and the cause."""
    head = f"{REASON_PREFIX} incident {incident}" if incident is not None else REASON_PREFIX
    return f"{head}: {cause}{' ' + detail if detail else ''}"[:250]
