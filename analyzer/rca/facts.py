"""Facts about the bundle as a whole, stated in words beside its lines (the model reads them, so do people).

A line says what one process saw; some clues are only in how lines relate to what is known: a wait that expired
at exactly an emitter's default timeout (the process waited the whole default for a peer), the signal behind a
Slurm exit code, a job's time limit beside its state. Pure functions of the bundle; the defaults are data
(catalog/timeouts.yaml, each with its source).
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from hpcmind.contract import EvidenceBundle, JobEvidence

CATALOG = Path(__file__).with_name("catalog") / "timeouts.yaml"
MAX_TIMEOUT_FACTS = 2

_UNIT_S = {
    "ms": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "secs": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
}
_NUM_UNIT = r"(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|secs?|seconds?|min|minutes?)\b"
_TIMEOUTS = (
    # the number stays in the same clause ("timed out after 1800000ms"), not the next sentence's "Ran 1 minutes"
    re.compile(r"(?:timed out|timeout|time out)[^\d.;]{0,24}?" + _NUM_UNIT, re.IGNORECASE),
    re.compile(_NUM_UNIT + r"\W{0,3}(?:timeout|time-out)", re.IGNORECASE),
    re.compile(r"Timeout\(ms\)=(\d+)()"),
    re.compile(r"timeout=(\d+):(\d\d):(\d\d)\b"),  # a Python timedelta as printed: 0:30:00
)
_NEGATED = re.compile(r"\b(?:not|never|no)\s*$|n't\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class KnownTimeout:
    seconds: float
    name: str
    src: str


@cache
def known_timeouts() -> tuple[KnownTimeout, ...]:
    rows = yaml.safe_load(CATALOG.read_text(encoding="utf-8"))["timeouts"]
    return tuple(KnownTimeout(float(r["seconds"]), str(r["name"]), str(r["src"])) for r in rows)


def _seconds(m: re.Match[str]) -> float | None:
    g = m.groups()
    if len(g) == 3:  # h:mm:ss
        return int(g[0]) * 3600 + int(g[1]) * 60 + int(g[2])
    unit = (g[1] or "ms").lower()  # Timeout(ms)= has no unit group
    return float(g[0]) * _UNIT_S.get(unit, 1.0)


def _human(seconds: float) -> str:
    if seconds >= 120 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


def timeouts(lines: list[str]) -> list[float]:
    """Distinct timeout durations (seconds) the lines state, in order of first mention."""
    out: list[float] = []
    for line in lines:
        for rx in _TIMEOUTS:
            for m in rx.finditer(line):
                if _NEGATED.search(line[max(0, m.start() - 12) : m.start()]):
                    continue  # "has not timed out"
                s = _seconds(m)
                if s is not None and s > 0 and s not in out:
                    out.append(s)
    return out


def timeout_facts(lines: list[str]) -> list[str]:
    known = {k.seconds: k for k in known_timeouts()}
    out = []
    for s in timeouts(lines):
        k = known.get(round(s, 3))
        if k is not None:
            out.append(f"a {_human(s)} timeout expired: {k.name}")
        else:
            out.append(f"a {_human(s)} timeout expired (set by the job; no emitter's default)")
    return out[:MAX_TIMEOUT_FACTS]


def signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def exit_signal(exit_code: str | None) -> int | None:
    """The signal behind a Slurm exit code `status:signal`, or a shell's 128+N status."""
    if not exit_code:
        return None
    m = re.fullmatch(r"\s*(-?\d+)(?::(\d+))?\s*", exit_code)
    if m is None:
        return None
    status, sig = int(m.group(1)), int(m.group(2) or 0)
    if sig > 0:
        return sig
    if 128 < status < 160:
        return status - 128
    return None


_CLOCK = re.compile(r"\s*(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)\s*")


def clock_seconds(v: str | None) -> int | None:
    """Slurm's [D-]HH:MM:SS (or MM:SS) as seconds; None for UNLIMITED, empty or unreadable."""
    m = _CLOCK.fullmatch(v or "")
    if m is None:
        return None
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def job_facts(job: JobEvidence | None) -> list[str]:
    if job is None:
        return []
    out = []
    sig = exit_signal(job.exit_code)
    if sig is not None:
        out.append(f"job {job.id or '?'} ended on signal {sig} ({signal_name(sig)})")
    if job.time_limit and job.elapsed:  # the limit alone is on the JOB line
        out.append(f"job {job.id or '?'} ran {job.elapsed} of its {job.time_limit} limit")
    return out


# `ulimit -a`/`-l` output, or UCX's own hint (openucx/ucx@9466d104 src/uct/ib/base/ib_log.c:239): a bounded
# locked-memory limit is why verbs/UCX/NCCL memory registration fails with ENOMEM on a host with free memory
_MEMLOCK = (
    re.compile(r"max locked memory\s+\(kbytes, -l\)\s+(\d+)\b"),
    re.compile(r"max locked memory \(ulimit -l\)[^(]*\(current: (\d+) kbytes\)"),
)


def memlock_facts(lines: list[str]) -> list[str]:
    for line in lines:
        for rx in _MEMLOCK:
            m = rx.search(line)
            if m is not None:
                return [
                    f"locked memory is limited to {int(m.group(1))} kB (ulimit -l), not unlimited: RDMA memory "
                    "registration (verbs, UCX, NCCL net/IB) fails with 'Cannot allocate memory'"
                ]
    return []


def bundle_facts(bundle: EvidenceBundle) -> list[str]:
    lines = [e.line for e in bundle.logs]
    return job_facts(bundle.job) + timeout_facts(lines) + memlock_facts(lines)
