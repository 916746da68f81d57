"""TransitNet training: DistributedDataParallel under torchrun (gloo on CPU, NCCL on GPU).

    torchrun --nproc-per-node 2 -m astro_workloads.transitnet.train --out DIR [--fault F]

Per step each rank publishes astro_train_* gauges (step time, data wait, samples/s, loss, gradient norm,
memory) on its own /metrics port and drops a file_sd target file beside Prometheus, so a Slurm job is scraped
from the moment it starts; at exit it waits for one last scrape so short runs are seen. Rank 0 checkpoints
every epoch (model, optimiser, epoch) and a restarted job resumes from it. Faults on demand fail the way real jobs fail:
  host-oom   allocate host memory past the job's limit (the cgroup OOM killer ends it: OUT_OF_MEMORY)
  nan        the learning rate explodes: the loss turns NaN and the job stops with FloatingPointError
  hang       rank 1 stops joining collectives: the others time out in the collective (gloo/NCCL timeout)
  slow-data  the input pipeline starves the GPUs (data wait > step time)
  crash      a code bug (KeyError) on rank 0 mid-epoch
  timeout    train far longer than the job's time limit
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..scrape import ScrapeTarget

FAULTS = ("none", "host-oom", "nan", "hang", "slow-data", "crash", "timeout")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="transitnet-train", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="checkpoints and the run summary")
    p.add_argument("--curves", type=int, default=4096, help="training light curves (synthetic, seeded)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64, help="per rank")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--fault", choices=FAULTS, default="none")
    p.add_argument("--fault-after", type=int, default=5, help="steps before the fault starts")
    p.add_argument("--collective-timeout", type=float, default=60.0, help="seconds before a stuck collective fails")
    p.add_argument("--metrics-port", type=int, default=0, help="0: any free port")
    p.add_argument("--targets-dir", type=Path, default=None, help="Prometheus file_sd directory (default: none)")
    p.add_argument(
        "--final-scrape-wait",
        type=float,
        default=30.0,
        help="with --targets-dir: seconds to wait at exit for Prometheus to scrape the last values",
    )
    p.add_argument("--smoke", action="store_true", help="a seconds-long run: 512 curves, 1 epoch")
    a = p.parse_args(argv)
    if a.smoke:  # four steps per rank on two ranks; a requested fault strikes at the second
        a.curves, a.epochs, a.fault_after = 512, 1, min(a.fault_after, 2)
    return a


class Metrics:
    def __init__(self, port: int, labels: dict[str, str], targets_dir: Path | None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

        self.registry = CollectorRegistry()
        names = list(labels)

        def g(name: str, doc: str) -> Any:
            return Gauge(name, doc, names, registry=self.registry).labels(**labels)

        self.step_seconds = g("astro_train_step_seconds", "Duration of the last training step.")
        self.data_wait = g("astro_train_data_wait_seconds", "Time the last step waited for input data.")
        self.samples = g("astro_train_samples_per_second", "Training throughput of this rank.")
        self.loss = g("astro_train_loss", "Training loss of the last step.")
        self.grad_norm = g("astro_train_grad_norm", "Global gradient norm of the last step.")
        self.memory = g("astro_train_memory_bytes", "Resident memory of this rank (GPU: max allocated).")
        self.steps = Counter("astro_train_steps", "Training steps completed.", names, registry=self.registry).labels(
            **labels
        )
        server, _ = start_http_server(port, addr="0.0.0.0", registry=self.registry)
        self.port = server.server_port
        self.target = ScrapeTarget(self.registry, f"{socket.gethostname()}:{self.port}", labels, targets_dir)

    def flush(self, timeout: float) -> bool:
        return self.target.flush(timeout)

    def close(self) -> None:
        self.target.close()


def _rss_bytes() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return float(pages * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        return 0.0


def main(argv: list[str] | None = None) -> int:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    from .lightcurves import dataset
    from .model import build, to_input

    a = parse_args(argv)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if world > 1:
        dist.init_process_group(
            "nccl" if cuda else "gloo",
            timeout=timedelta(seconds=a.collective_timeout),
            device_id=device if cuda else None,
        )
    if not cuda:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // max(1, world)))
    job = os.environ.get("SLURM_JOB_ID", "local")
    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()  # Slurm's node name, as in squeue
    labels = {"job_id": job, "rank": str(rank), "hostname": node, "workload": "transitnet"}
    metrics = Metrics(a.metrics_port + (local if a.metrics_port else 0), labels, a.targets_dir)

    def log(msg: str) -> None:
        print(f"[rank{rank}] {msg}", flush=True)

    log(f"world={world} device={device} metrics=:{metrics.port} fault={a.fault}")

    torch.manual_seed(a.seed)
    _, flux, y = dataset(a.curves, a.seed)
    data = TensorDataset(torch.from_numpy(to_input(flux)), torch.from_numpy(y.astype(np.float32)))
    sampler: DistributedSampler[Any] = DistributedSampler(
        data, num_replicas=world, rank=rank, shuffle=True, seed=a.seed
    )
    loader = DataLoader(data, batch_size=a.batch_size, sampler=sampler, num_workers=0)
    model = build().to(device)
    ddp: Any = DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    a.out.mkdir(parents=True, exist_ok=True)
    ckpt = a.out / "checkpoint.pt"
    start_epoch = 0
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch = state["epoch"]
        log(f"resumed from {ckpt} at epoch {start_epoch}")

    hog: list[bytearray] = []
    step = 0
    total_time = total_wait = compute = 0.0
    epochs = a.epochs * (1000 if a.fault == "timeout" else 1)
    for epoch in range(start_epoch, epochs):
        sampler.set_epoch(epoch)
        t_wait = time.perf_counter()
        for x, target in loader:
            if a.fault == "slow-data" and step >= a.fault_after:
                # a starved input pipeline (a slow filesystem, too few workers): the batch arrives well after
                # the GPU is ready for it, however fast or busy this machine's steps are
                time.sleep(max(1.0, 3 * compute))
            x, target = x.to(device), target.to(device)
            t0 = time.perf_counter()
            wait = t0 - t_wait
            if step == a.fault_after:
                if a.fault == "nan":
                    for group in opt.param_groups:
                        group["lr"] = 1e30  # a schedule bug: the warm-up divides by a zero step count
                elif a.fault == "crash" and rank == 0:
                    config: dict[str, float] = {"lr": a.lr}
                    log("reloading the learning-rate schedule")
                    _ = config["warmup_steps"]  # the bug: a key the config never had
                elif a.fault == "hang" and rank == 1:
                    log("entering a long host-side computation (stops joining collectives)")
                    time.sleep(10**6)
            if a.fault == "host-oom" and step >= a.fault_after:
                for _ in range(8):
                    hog.append(bytearray(b"\x01" * (64 << 20)))  # touched pages: RSS grows 512 MiB a step
            loss = loss_fn(ddp(x), target)
            opt.zero_grad()
            loss.backward()
            grad = float(torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")))
            opt.step()
            step += 1
            compute = time.perf_counter() - t0
            dt = compute + wait
            total_time, total_wait = total_time + dt, total_wait + wait
            lv = float(loss.detach())
            metrics.step_seconds.set(dt)
            metrics.data_wait.set(wait)
            metrics.samples.set(len(x) / dt if dt > 0 else 0.0)
            metrics.loss.set(lv)
            metrics.grad_norm.set(grad)
            metrics.memory.set(float(torch.cuda.max_memory_allocated(device)) if cuda else _rss_bytes())
            metrics.steps.inc()
            if step % 5 == 0 or not np.isfinite(lv):
                log(
                    f"epoch={epoch} step={step} loss={lv:.4f} grad_norm={grad:.3g} "
                    f"step_time={dt:.3f} data_wait={wait:.3f}"
                )
            if not np.isfinite(lv):
                metrics.flush(a.final_scrape_wait)  # the NaN loss is what the alert needs to see
                metrics.close()
                raise FloatingPointError(f"Loss is {lv} at step {step}: training diverged, stopping")
            t_wait = time.perf_counter()
        if rank == 0:
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1}, tmp)
            tmp.rename(ckpt)
        log(f"epoch {epoch} done: {step} steps, waited for data {total_wait / max(total_time, 1e-9):.0%} of the time")
    if rank == 0:
        (a.out / "summary.json").write_text(json.dumps({"steps": step, "epochs": epochs, "world": world}) + "\n")
    metrics.flush(a.final_scrape_wait)
    metrics.close()
    if world > 1:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
