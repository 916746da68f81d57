"""AstroCode as a job: serve, be scraped, and (for tests and fault drills) drive traffic at the server.

    python -m astro_workloads.astrocode.job [--targets-dir DIR] [--fault overload] [--smoke]

The server listens on a free port on this node and registers itself with Prometheus (file_sd, labels job_id,
hostname, workload). Without a fault it serves until the job ends (Slurm's time limit or scancel); `--smoke`
sends a few requests, waits for one last scrape and exits. `--fault overload` shrinks the KV-cache budget and
drives the load generator far above what two CPU cores decode: the queue grows, the KV cache fills and
sequences are preempted — what a traffic burst does to a vLLM deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import threading
from pathlib import Path

from hpcmind.services.proc import http_ok, stop_on_signals, wait_for_stop, wait_until

from ..scrape import ScrapeTarget
from . import loadgen
from .server import create_app, load_transformers

FAULTS = ("none", "overload")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="astrocode-job", description=__doc__.splitlines()[0])
    p.add_argument("--fault", choices=FAULTS, default="none")
    p.add_argument("--smoke", action="store_true", help="a few requests, then exit")
    p.add_argument("--targets-dir", type=Path, default=None, help="Prometheus file_sd directory (default: none)")
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    p.add_argument("--kv-budget-tokens", type=int, default=4096)
    p.add_argument("--max-num-seqs", type=int, default=8)
    p.add_argument("--rate", type=float, default=6.0, help="overload: requests per second")
    p.add_argument("--load-seconds", type=float, default=90.0, help="overload: seconds of traffic")
    p.add_argument("--final-scrape-wait", type=float, default=30.0)
    a = p.parse_args(argv)
    if a.fault == "overload":  # a small KV budget and a burst well above capacity
        a.kv_budget_tokens, a.max_num_seqs = min(a.kv_budget_tokens, 480), min(a.max_num_seqs, 6)
    return a


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    a = parse_args(argv)
    job = os.environ.get("SLURM_JOB_ID", "local")
    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    engine, tok = load_transformers(a.kv_budget_tokens, a.max_num_seqs)
    port = a.port or _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine, tok), host="0.0.0.0", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(url + "/health"), 30, "astrocode server")
    labels = {"job_id": job, "hostname": node, "workload": "astrocode"}
    target = ScrapeTarget(engine.stats.registry, f"{socket.gethostname()}:{port}", labels, a.targets_dir)
    print(f"astrocode: job {job} serving http://{socket.gethostname()}:{port}/v1 fault={a.fault}", flush=True)
    done = stop_on_signals()
    try:
        if a.fault == "overload":
            res = asyncio.run(loadgen.run(url, a.rate, a.load_seconds, max_tokens=64, drain=5))
            print(f"astrocode: load {json.dumps(res.__dict__)}", flush=True)
        elif a.smoke:
            res = asyncio.run(loadgen.run(url, 2.0, 2.0, max_tokens=8))
            print(f"astrocode: load {json.dumps(res.__dict__)}", flush=True)
        else:
            wait_for_stop(done)
        target.flush(a.final_scrape_wait)
    finally:
        target.close()
        server.should_exit = True
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
