"""`hpcmind workloads run|submit transitnet`: locally under torchrun, or as a real Slurm job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hpcmind.errors import UsageError
from hpcmind.settings import Settings

SBATCH = Path(__file__).resolve().parent / "slurm"
# a memory limit the host-oom fault overruns within seconds (cgroup enforcement ends the job OUT_OF_MEMORY)
FAULT_SBATCH = {"host-oom": ["--mem=1200M"], "timeout": ["--time=00:01:00"]}


def train_args(fault: str, smoke: bool, targets: Path | None) -> list[str]:
    args = ["--fault", fault]
    if smoke:
        args.append("--smoke")
    if targets is not None:
        args += ["--targets-dir", str(targets)]
    if fault == "hang":
        args += ["--collective-timeout", "30"]
    return args


def run_local(workload: str, fault: str, smoke: bool, out: Path, nproc: int = 2) -> int:
    if workload != "transitnet":
        raise UsageError(f"workloads run {workload}: only transitnet runs locally so far")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    cmd += ["-m", "astro_workloads.transitnet.train", "--out", str(out), *train_args(fault, smoke, None)]
    return subprocess.call(cmd)


def submit(settings: Settings, workload: str, fault: str, smoke: bool, out_dir: Path) -> str:
    from hpcmind.services.catalog import Prometheus, Slurm

    if workload != "transitnet":
        raise UsageError(f"workloads submit {workload}: only transitnet is built so far")
    slurm = Slurm(settings)
    if not slurm.conf.exists():
        raise UsageError(f"{slurm.conf}: no local Slurm; start it with `hpcmind services up slurm`")
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = Prometheus(settings).dir / "targets"
    env = {
        **os.environ,
        **slurm.env(),
        "HPCMIND_PYTHON": sys.executable,
        "TRANSITNET_OUT": str(out_dir / "run"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    cmd = ["sbatch", "--parsable", "-o", str(out_dir / "%x-%j.out"), *FAULT_SBATCH.get(fault, [])]
    cmd += [str(SBATCH / "transitnet.sbatch"), *train_args(fault, smoke, targets)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise UsageError(f"sbatch: {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout.strip().split(";")[0]
