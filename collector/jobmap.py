"""GPU -> job attribution in dcgm-exporter's job-mapping format, as a transform applied after collection.

dcgm-exporter (`--hpc-job-mapping-dir`) reads one file per GPU, named by the GPU index (`<gpu>` or `<gpu>.<gi>` for
MIG), each listing the ids of the jobs using it, one per line; a Slurm prolog writes them and the epilog removes
them. A GPU shared by two jobs yields two series. We add the same `hpc_job` label.

Label versus join: an `hpc_job` label makes every GPU series churn with each job (new series per job, more TSDB
head memory on busy clusters) but lets a job's evidence be one selector over its lifetime (jobstats' habit). The
alternative is one info series per (gpu, job) joined at query time (`* on(Hostname, gpu) group_left(hpc_job)`),
which keeps GPU series stable but makes every query a join. We label, as dcgm-exporter does.
"""

from __future__ import annotations

from pathlib import Path


def read_job_mapping(directory: Path) -> dict[str, list[str]]:
    """gpu index (or 'gpu.gi') -> job ids, from a mapping directory; unreadable files are skipped."""
    out: dict[str, list[str]] = {}
    if not directory.is_dir():
        return out
    for f in sorted(directory.iterdir()):
        if not f.is_file():
            continue
        try:
            jobs = [ln.strip() for ln in f.read_text().splitlines() if ln.strip()]
        except OSError:
            continue
        if jobs:
            out[f.name] = jobs
    return out


def write_job_mapping(directory: Path, gpu: str, job_ids: list[str]) -> None:
    """What a Slurm prolog does (an empty list is what the epilog does)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / gpu
    if job_ids:
        path.write_text("\n".join(job_ids) + "\n")
    else:
        path.unlink(missing_ok=True)


def attribute(labels: list[dict[str, str]], mapping: dict[str, list[str]]) -> list[dict[str, str]]:
    """Each GPU label set, once per job using that GPU (with `hpc_job`), or unchanged when no job uses it."""
    out = []
    for lb in labels:
        key = lb.get("gpu", "")
        if lb.get("GPU_I_ID"):
            key = f"{key}.{lb['GPU_I_ID']}"
        jobs = mapping.get(key, [])
        out += [{**lb, "hpc_job": j} for j in jobs] if jobs else [lb]
    return out
