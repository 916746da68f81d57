"""Compose labelled evidence bundles from the template catalogue, the way real incidents look.

Kinds: a root line among its symptoms and chatter (`fault`); a cascade whose loudest, most repeated lines are
symptoms (`cascade`); a symptom standing alone, labelled with what it means alone (`symptom`); healthy output full
of trigger words (`healthy`). Every line may carry a launcher prefix (`[rank3]:`, `3: `, Ray's `(pid=…)`, a
timestamp), be truncated, or come from another source. Templates are split by id between train and val, so
validation measures wordings the model was never shown.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hpcmind.taxonomy import UNKNOWN, root_cause_ids

from .catalog import Template, templates
from .fills import Fill

VAL_SHARE = 0.2
JOB_STATES = {
    "walltime_exceeded": ("TIMEOUT", "TimeLimit"),
    "host_oom": ("OUT_OF_MEMORY", "OutOfMemory"),
    "node_failure": ("NODE_FAIL", "NodeDown"),
    "preemption": ("PREEMPTED", "Preempted"),
}


def template_split(t: Template) -> str:
    """Stable per-template split: a hash of the id, so adding rows does not reshuffle the others."""
    h = int(hashlib.sha256(t.id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < VAL_SHARE else "train"


@dataclass(frozen=True)
class Pools:
    roots: dict[str, list[Template]]
    symptoms: dict[str, list[Template]]  # by the cause they follow
    alone: dict[str, list[Template]]  # symptoms by their label when alone
    healthy: list[Template]
    context: list[Template]  # tracebacks and frames: follow anything, name nothing

    @classmethod
    def for_split(cls, split: str | None) -> Pools:
        roots: dict[str, list[Template]] = defaultdict(list)
        symptoms: dict[str, list[Template]] = defaultdict(list)
        alone: dict[str, list[Template]] = defaultdict(list)
        healthy, context = [], []
        for t in templates():
            # the split holds out root and symptom wordings; healthy chatter is shared (it labels nothing)
            if split is not None and t.role != "healthy" and template_split(t) != split:
                continue
            if t.role == "root":
                roots[t.cause].append(t)
            elif t.role == "healthy":
                healthy.append(t)
            else:
                if t.id.startswith("py-"):
                    context.append(t)
                    continue
                for c in t.follows:
                    symptoms[c].append(t)
                if t.alone != UNKNOWN:
                    alone[t.alone].append(t)
        return cls(dict(roots), dict(symptoms), dict(alone), healthy, context)


def _prefix(rng: random.Random, fill: Fill, style: str) -> str:
    if style == "rank":
        return f"[rank{fill.value('rank')}]:"
    if style == "srun":
        return f"{fill.value('rank')}: "
    if style == "ray":
        return f"(RayTrainWorker pid={fill.value('pid')}) "
    if style == "time":
        ms, level = rng.randint(0, 999), rng.choice(("ERROR", "INFO", "WARNING"))
        return f"2026-{fill.day[0]:02d}-{fill.day[1]:02d} {fill.hms()},{ms:03d} - {level} - "
    if style == "host":
        return f"{fill.value('host')}: "
    return ""


def _line(rng: random.Random, fill: Fill, t: Template, style: str) -> dict[str, str]:
    text = fill.render(t.text)
    kernel = t.text.startswith("{kts}")
    if not (kernel or t.id.startswith(("slurmctld", "fm-", "k8s-"))):
        text = _prefix(rng, fill, style) + text
    if rng.random() < 0.08 and len(text) > 80:
        text = text[: int(len(text) * rng.uniform(0.6, 0.95))]
    if kernel and rng.random() < 0.5:
        source = f"node/{fill.value('host')}/kernel"
    elif t.id.startswith("slurmctld") and rng.random() < 0.5:
        source = "slurm/slurmctld"
    else:
        source = rng.choice(("job", "job", "job", f"job/{fill.job}"))
    return {"source": source, "line": text}


def _noise(rng: random.Random, fill: Fill, pools: Pools, n: int, style: str) -> list[dict[str, str]]:
    return [_line(rng, fill, rng.choice(pools.healthy), style) for _ in range(n)]


def _context(rng: random.Random, fill: Fill, pools: Pools, style: str) -> list[dict[str, str]]:
    if not pools.context or rng.random() < 0.5:
        return []
    tb = [t for t in pools.context if t.id == "py-traceback"]
    frames = [t for t in pools.context if t.id == "py-frame"]
    out = [_line(rng, fill, tb[0], style)] if tb else []
    out += [_line(rng, fill, rng.choice(frames), style) for _ in range(rng.randint(1, 6))] if frames else []
    return out


def _job(rng: random.Random, fill: Fill, label: str) -> dict[str, Any] | None:
    if rng.random() > 0.3:
        return None
    state, reason = JOB_STATES.get(label, ("FAILED", "NonZeroExitCode") if label != UNKNOWN else ("COMPLETED", "None"))
    if label == UNKNOWN and rng.random() < 0.5:
        state, reason = "RUNNING", "None"
    return {
        "id": fill.job,
        "state": state,
        "reason": reason,
        "nodes": fill.hosts,
        "exit_code": "0:0"
        if state in ("COMPLETED", "RUNNING", "TIMEOUT")
        else rng.choice(("1:0", "0:9", "0:15", "137:0")),
    }


def compose_one(rng: random.Random, pools: Pools, label: str, kind: str) -> dict[str, Any]:
    fill = Fill.new(rng)
    style = rng.choice(("", "", "rank", "srun", "ray", "time", "host"))
    lines: list[dict[str, str]] = []
    if kind == "healthy":
        lines = _noise(rng, fill, pools, rng.randint(2, 24), style)
    elif kind == "symptom":
        t = rng.choice(pools.alone[label])
        body = [_line(rng, fill, t, style) for _ in range(rng.randint(1, 4))]
        lines = _noise(rng, fill, pools, rng.randint(0, 8), style) + _context(rng, fill, pools, style) + body
    else:
        roots = pools.roots[label]
        body = [_line(rng, fill, rng.choice(roots), style) for _ in range(rng.choice((1, 1, 1, 2, 3)))]
        syms = pools.symptoms.get(label, [])
        n_sym = rng.randint(3, 8) if kind == "cascade" else rng.choice((0, 0, 1, 2, 3))
        cascade = [_line(rng, fill, rng.choice(syms), style) for _ in range(n_sym)] if syms else []
        if kind == "cascade" and cascade:  # the symptom repeats once per rank: the loudest line is not the root
            cascade = cascade + [dict(x) for x in cascade for _ in range(rng.randint(0, 3))]
        lines = _noise(rng, fill, pools, rng.randint(0, 10), style) + _context(rng, fill, pools, style)
        lines += body
        insert_at = rng.randint(0, len(lines))
        if rng.random() < 0.5:  # some ranks report before the root line reaches the log, the rest after it
            lines[insert_at:insert_at] = cascade
        lines += cascade
        lines += _noise(rng, fill, pools, rng.randint(0, 4), style)
    bundle: dict[str, Any] = {"logs": lines}
    job = _job(rng, fill, label)
    if job:
        bundle["job"] = job
    return bundle


def compose(split: str, per_cause: int, healthy: int, seed: int) -> Iterator[dict[str, Any]]:
    """Labelled bundles for one split; `split` selects the template half (train or val), `all` every template (the
    final fit, once the recipe was chosen on the split)."""
    pools = Pools.for_split(None if split == "all" else split)
    rng = random.Random(f"{seed}-{split}")
    n = 0
    for cause in root_cause_ids():
        kinds: Sequence[str] = ["fault"] * 6 + ["cascade"] * 3 + (["symptom"] if cause in pools.alone else [])
        if cause not in pools.roots:
            kinds = ["symptom"] if cause in pools.alone else []
        for _ in range(per_cause if kinds else 0):
            kind = rng.choice(kinds)
            n += 1
            yield {
                "id": f"corpus-{split}-{n:05d}",
                "split": split,
                "root_cause": cause,
                "kind": kind,
                "bundle": compose_one(rng, pools, cause, kind),
            }
    for _ in range(healthy):
        n += 1
        yield {
            "id": f"corpus-{split}-{n:05d}",
            "split": split,
            "root_cause": UNKNOWN,
            "kind": "healthy",
            "bundle": compose_one(rng, pools, UNKNOWN, "healthy"),
        }
