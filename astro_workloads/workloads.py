"""`hpcmind workloads run|submit transitnet|astrocode`: locally, or as a real Slurm job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hpcmind.errors import UsageError
from hpcmind.settings import Settings

SBATCH = Path(__file__).resolve().parent / "slurm"
FAULTS = {
    "transitnet": ("none", "host-oom", "nan", "hang", "slow-data", "crash", "timeout"),
    "astrocode": ("none", "overload"),
}
# a memory limit the host-oom fault overruns within seconds (cgroup enforcement ends the job OUT_OF_MEMORY)
FAULT_SBATCH = {"host-oom": ["--mem=1200M"], "timeout": ["--time=00:01:00"]}


def check(workload: str, fault: str) -> None:
    if workload not in FAULTS:
        raise UsageError(f"workload {workload!r}: expected one of {', '.join(FAULTS)}")
    if fault not in FAULTS[workload]:
        raise UsageError(f"--fault {fault}: {workload} knows {', '.join(FAULTS[workload])}")


def job_args(fault: str, smoke: bool, targets: Path | None) -> list[str]:
    args = ["--fault", fault]
    if smoke:
        args.append("--smoke")
    if targets is not None:
        args += ["--targets-dir", str(targets)]
    if fault == "hang":
        args += ["--collective-timeout", "30"]
    return args


def run_local(workload: str, fault: str, smoke: bool, out: Path, nproc: int = 2) -> int:
    check(workload, fault)
    if workload == "astrocode":
        cmd = [sys.executable, "-m", "astro_workloads.astrocode.job", *job_args(fault, smoke, None)]
        return subprocess.call(cmd)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    cmd += ["-m", "astro_workloads.transitnet.train", "--out", str(out), *job_args(fault, smoke, None)]
    return subprocess.call(cmd)


def submit(settings: Settings, workload: str, fault: str, smoke: bool, out_dir: Path) -> str:
    from hpcmind.services.catalog import Prometheus, Slurm

    check(workload, fault)
    slurm = Slurm(settings)
    if not slurm.conf.exists():
        raise UsageError(f"{slurm.conf}: no local Slurm; start it with `hpcmind services up slurm`")
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = Prometheus(settings).dir / "targets"
    env = {
        **os.environ,
        **slurm.env(),
        "HPCMIND_PYTHON": sys.executable,
        "TRANSITNET_RUNS": str(out_dir),  # checkpoints in <dir>/transitnet-<job id>: a requeued job resumes
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    cmd = ["sbatch", "--parsable", "-o", str(out_dir / "%x-%j.out"), *FAULT_SBATCH.get(fault, [])]
    cmd += [str(SBATCH / f"{workload}.sbatch"), *job_args(fault, smoke, targets)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise UsageError(f"sbatch: {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout.strip().split(";")[0]
