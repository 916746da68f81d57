"""`hpcmind bench simulator`: simulated seconds per wall second and peak memory by cluster size, one core.

Each size runs in its own process (pinned to one CPU) so its peak RSS is its own; the run writes its real
outputs (metrics.parquet, logs.jsonl) to a scratch directory, since writing them is part of the cost.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hpcmind.bench_results import write_results

SIZES = (128, 512, 1024, 2048)
SIM_SECONDS = 3600.0
TARGET_X = 300.0


def scenario(nodes: int) -> dict[str, Any]:
    return {
        "name": f"bench-{nodes}",
        "seed": 1,
        "tick_seconds": 15,
        "cluster": {
            "partitions": [
                {
                    "name": "gpu",
                    "nodes": nodes,
                    "node_prefix": "gpu-",
                    "name_digits": 4,
                    "gpus_per_node": 8,
                    "ib_hcas": 8,
                    "nodes_per_leaf": 32,
                }
            ]
        },
        "workload": {"arrivals_per_hour": nodes / 5, "initial_utilisation": 0.85},
        "faults": {"random": {"hardware_per_1000_node_days": 4, "time_compression": 50}},
    }


def worker(nodes: int, seconds: float) -> dict[str, Any]:
    """Runs in the child process."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import pyarrow as pa

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    from .engine import Simulation
    from .output import RunWriter
    from .scenario import parse_scenario

    sc = parse_scenario(scenario(nodes))
    t0 = time.perf_counter()
    sim = Simulation(sc)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d, RunWriter(sim, Path(d)) as w:
        sim.run(seconds, on_tick=w.tick)
        w.close()
        t2 = time.perf_counter()
        size = (Path(d) / "metrics.parquet").stat().st_size
    wall = t2 - t1
    return {
        "nodes": nodes,
        "gpus": nodes * 8,
        "simulated_s": seconds,
        "setup_s": round(t1 - t0, 3),
        "wall_s": round(wall, 3),
        "speedup_x": round(seconds / wall, 1),
        "samples": w.rows,
        "samples_per_s": round(w.rows / wall),
        "log_lines": w.lines,
        "parquet_mb": round(size / 1e6, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run(out_dir: Path, sizes: tuple[int, ...] = SIZES, seconds: float = SIM_SECONDS) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1"}
    rows = []
    for n in tqdm(sizes, desc="bench simulator", unit="size", file=sys.stderr):
        res = subprocess.run(
            [sys.executable, "-m", "simulator.bench", str(n), str(seconds)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    base = rows[0]
    for r in rows:
        # cost per GPU relative to the smallest size: 1.0 means linear scaling
        r["cost_per_gpu_vs_smallest"] = round((r["wall_s"] / r["gpus"]) / (base["wall_s"] / base["gpus"]), 2)
    at_1024 = next((r for r in rows if r["nodes"] == 1024), None)
    result = {
        "benchmark": "simulator",
        "tick_seconds": 15,
        "simulated_seconds": seconds,
        "cores": 1,
        "target": f">= {TARGET_X:.0f}x real time at 1,024 nodes",
        "met": bool(at_1024 and at_1024["speedup_x"] >= TARGET_X),
        "results": rows,
    }
    write_results(out_dir, "simulator", result, markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Simulator benchmark",
        "",
        f"One core, {result['simulated_seconds'] / 3600:g} simulated hour(s) at 15 s ticks, writing "
        f"metrics.parquet and logs.jsonl. Target: {result['target']} — "
        f"{'met' if result['met'] else 'NOT met'}.",
        "",
        "| nodes | GPUs | x real time | samples/s | wall s | peak RSS MB | parquet MB | cost/GPU vs 128 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["results"]:
        lines.append(
            f"| {r['nodes']} | {r['gpus']} | {r['speedup_x']:.0f} | {r['samples_per_s']:,} | {r['wall_s']:.1f} "
            f"| {r['peak_rss_mb']:.0f} | {r['parquet_mb']:.0f} | {r['cost_per_gpu_vs_smallest']:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(json.dumps(worker(int(sys.argv[1]), float(sys.argv[2]))))
