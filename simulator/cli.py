"""`hpcmind simulate`: run a scenario accelerated and write its run directory."""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from hpcmind.errors import UsageError

from .engine import Simulation
from .output import RunWriter
from .scenario import builtin_scenario, load_scenario, parse_duration


def resolve_scenario(arg: str) -> Path:
    p = Path(arg)
    if p.exists() or "/" in arg or arg.endswith((".yaml", ".yml")):
        return p
    return builtin_scenario(arg)  # a bare name picks a shipped scenario: demo, one-of-each, large, quiet


def run_simulate(scenario: str, duration: str | None, out: Path, seed: int | None, no_metrics: bool = False) -> int:
    sc = load_scenario(resolve_scenario(scenario))
    try:
        secs = parse_duration(duration) if duration is not None else sc.duration
    except ValueError as exc:
        raise UsageError(f"--duration: {exc}") from None
    if secs is None or secs <= 0:
        raise UsageError("--duration: required (the scenario sets none), e.g. --duration 6h")
    sim = Simulation(sc, seed)
    n = round(secs / sc.tick_seconds)
    with (
        RunWriter(sim, out, metrics=not no_metrics) as w,
        tqdm(total=n, unit="tick", file=sys.stderr, desc=f"simulate {sc.name}", disable=not sys.stderr.isatty()) as bar,
    ):
        sim.run(secs, on_tick=w.tick, progress=bar.update)
    print(
        f"{out}: {w.rows} metric samples, {w.lines} log lines, {len(sim.truth)} faults "
        f"({', '.join(sorted({g.root_cause for g in sim.truth})) or 'none'})"
    )
    return 0
