"""`hpcmind train dataset`: labelled evidence bundles cut from simulator runs.

Each run is a small cluster drawn from its seed (host naming, GPU model, size, tick, load, user failures,
confounders) with every root cause scheduled once in random order and variant, far enough apart that the
analyzer would see one alert per fault. Per fault the bundle is cut the way the analyzer gathers evidence
(`run_bundles`), with an alert the rules would raise; no-fault controls are cut between faults. Views add the
variety real incidents have: only logs, only metrics, only the alert, truncated logs, noise lines, and a
second incident's lines interleaved. Splits go by run seed, so no test incident shares a run with training.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from hpcmind.taxonomy import UNKNOWN, root_cause_ids

from .run_bundles import Run, bundle_for, bundle_for_truth

RULES = Path(__file__).resolve().parents[2] / "prometheus" / "rules" / "hpcmind-alerts.yml"
SPACING_MIN = 50
CAUSES_PER_RUN = 9
PREFIXES = ["gpu-a", "gpu-b", "node", "dgx", "hgx", "gn", "nid00", "compute-gpu-", "c", "ml-h100-", "sc-gpu"]
GPU_MODELS = ["H100-80GB", "A100-80GB", "A100-40GB", "H200"]
# views where the cause stays recognisable: without metrics a thermal or input-starved job has no telling log;
# without logs a code bug looks like any crash
NEEDS_METRICS = {"gpu_thermal", "dataloader_bottleneck", "inference_overload"}
METRICS_ONLY_OK = {
    "gpu_hardware_fault",
    "gpu_memory_error",
    "nvlink_error",
    "gpu_thermal",
    "network_fabric",
    "host_oom",
    "dataloader_bottleneck",
    "inference_overload",
    "gpu_oom",
}
# alerts that fire on healthy jobs now and then (a slow step, a pause between phases)
FALSE_ALARMS = ("JobGPUsIdle", "TrainingStepSlowdown")
VIEWS = ("full", "logs_only", "metrics_only", "alert_only", "truncated", "noisy", "concurrent")
SPLITS = ("train", "val", "test")


def split_of(seed: int) -> str:
    return "test" if seed % 5 == 0 else "val" if seed % 5 == 1 else "train"


@dataclass(frozen=True)
class Example:
    id: str
    seed: int
    split: str
    view: str
    root_cause: str
    culprit: dict[str, str]
    bundle: dict[str, Any]
    variant: str = ""
    # other names of the culprit: a GPU is also its PCI bus id (`nvidia-smi -i` takes either)
    culprit_aliases: dict[str, list[str]] = field(default_factory=dict)


@cache
def alert_rules() -> list[tuple[str, tuple[str, ...], str]]:
    """(alertname, causes it can be a symptom of, severity) from the shipped rules."""
    doc = yaml.safe_load(RULES.read_text())
    out = []
    for g in doc["groups"]:
        for r in g["rules"]:
            if "alert" in r:
                causes = tuple(c for c in r["annotations"].get("hpcmind_causes", "").split(",") if c)
                out.append((r["alert"], causes, r.get("labels", {}).get("severity", "warning")))
    return out


def scenario_for(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    causes = list(root_cause_ids())
    rng.shuffle(causes)
    causes = causes[:CAUSES_PER_RUN]  # more would drain a small cluster before the last fault finds a victim
    gpn = rng.choice([4, 8, 8])
    prefix = rng.choice(PREFIXES)
    return {
        "name": f"dataset-{seed}",
        "seed": seed,
        "tick_seconds": rng.choice([15, 15, 30]),
        "duration": f"{20 + SPACING_MIN * len(causes) + 30}m",
        "cluster": {
            "name": f"ds{seed}",
            "partitions": [
                {
                    "name": "gpu",
                    "nodes": rng.randint(6, 9),
                    "node_prefix": prefix,
                    "gpus_per_node": gpn,
                    "gpu_model": rng.choice(GPU_MODELS),
                    "ib_hcas": rng.choice([1, 2, 4]),
                }
            ],
        },
        "workload": {
            "arrivals_per_hour": rng.uniform(3, 8),
            "initial_utilisation": rng.uniform(0.75, 0.95),
            "mix": {"training": 0.7, "inference": 0.3},
            "user_failure_rate": rng.choice([0.0, 0.1, 0.2]),
            "mean_runtime": "30h",
            "first_job_id": rng.randint(1000, 900000),
        },
        "faults": {
            "random": {"enabled": False, "confounders_per_hour": rng.uniform(1, 6)},
            "cascade_scale": 1.0,
            "scheduled": [{"at": f"{20 + SPACING_MIN * i}m", "root_cause": c} for i, c in enumerate(causes)],
        },
    }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def synth_alert(rng: random.Random, cause: str, onset: float, culprit: dict[str, str]) -> dict[str, Any] | None:
    """An alert the shipped rules could raise for this cause, labelled the way they label it."""
    specific = [(a, s) for a, cs, s in alert_rules() if cs == (cause,)]
    general = [(a, s) for a, cs, s in alert_rules() if cause in cs and len(cs) > 1]
    pool = specific * 3 + general
    if cause == UNKNOWN:  # a false alarm: a slowdown or idle GPUs that meant nothing
        pool = [(a, s) for a, _, s in alert_rules() if a in FALSE_ALARMS]
    if not pool:
        return None
    name, severity = rng.choice(pool)
    causes = next(cs for a, cs, _ in alert_rules() if a == name)
    labels = {"alertname": name, "severity": severity}
    node = culprit.get("node")
    if node:
        labels["Hostname" if name.startswith("GPU") else "instance"] = (
            node if name.startswith("GPU") else f"{node}:9100"
        )
    if name.startswith("GPU") and culprit.get("gpu"):
        labels["gpu"] = culprit["gpu"]
    if culprit.get("job") and not name.startswith(("Node", "InfiniBand", "Filesystem", "IO")):
        labels["job_id"] = culprit["job"]
    # the annotations the shipped rule attaches: the analyzer reads hpcmind_causes as the rule author's prior
    annotations = {"summary": f"{name} firing", "hpcmind_causes": ",".join(causes)}
    return {"labels": labels, "annotations": annotations, "startsAt": _iso(onset + 60)}


def _controls(run: Run, rng: random.Random, n: int) -> list[tuple[float, str, str | None]]:
    """Quiet moments: no fault began in the 25 minutes before or 10 after, on a node and a job that no fault
    has touched before (a drained node, a job still starved by an earlier fault, is not a control)."""
    onsets = sorted(float(t["onset_ts"]) for t in run.truth)
    if not onsets:
        return []
    info = run.metrics.filter(run.metrics["name"] == "hpcmind_slurm_job_info")
    out: list[tuple[float, str, str | None]] = []
    for _ in range(n * 6):
        if len(out) >= n:
            break
        t = rng.uniform(onsets[0], onsets[-1])
        if any(-600 <= o - t <= 1500 for o in onsets):
            continue
        earlier = [tr for tr in run.truth if float(tr["onset_ts"]) < t + 600]
        bad_nodes = {tr["culprit"].get("node") for tr in earlier}
        bad_jobs = {str(j) for tr in earlier for j in [tr["culprit"].get("job"), *tr.get("affected_jobs", [])] if j}
        near = info.filter((info["timestamp"] - t).abs() < 60)
        # and the job is still running when the window closes (a job that hits its time limit is an incident)
        later = info.filter((info["timestamp"] - (t + 400)).abs() < 60)
        still = {json.loads(x)["job_id"] for x in later["labels"].to_list() if '"state":"RUNNING"' in x}
        running = [
            lb
            for lb in (json.loads(x) for x in near["labels"].to_list() if '"state":"RUNNING"' in x)
            if str(lb["job_id"]) not in bad_jobs and lb["job_id"] in still
        ]
        if not running:
            continue
        job = rng.choice(running)
        nodes = [x for x in job["nodes"].split(",") if x and x not in bad_nodes]
        if nodes and len(nodes) == len([x for x in job["nodes"].split(",") if x]):
            out.append((t, rng.choice(nodes), str(job["job_id"])))
    return out


def _noise_lines(rng: random.Random, pool: list[dict[str, str]], k: int) -> list[dict[str, str]]:
    return [dict(rng.choice(pool)) for _ in range(k)] if pool else []


def views_of(
    rng: random.Random, ex: Example, noise_pool: list[dict[str, str]], other: dict[str, Any] | None, n: int
) -> Iterator[Example]:
    """`n` extra views of one incident, chosen at random among the ones that keep it recognisable."""
    b = ex.bundle
    allowed = ["truncated", "noisy"]
    if b.get("logs") and ex.root_cause not in NEEDS_METRICS:
        allowed.append("logs_only")
    if b.get("metrics") and ex.root_cause in METRICS_ONLY_OK | {UNKNOWN}:
        allowed.append("metrics_only")
    if b.get("alert") and b["alert"]["annotations"].get("hpcmind_causes") == ex.root_cause:
        allowed.append("alert_only")  # only an alert that names one cause is a diagnosis on its own
    if other is not None and b.get("logs") and b.get("alert") and ex.root_cause != UNKNOWN:
        allowed.append("concurrent")  # the alert says which of the two incidents this bundle is about
    for view in rng.sample(allowed, min(n, len(allowed))):
        nb = json.loads(json.dumps(b))
        if view == "logs_only":
            nb = {"logs": nb["logs"]}
        elif view == "metrics_only":
            nb = {k: v for k, v in nb.items() if k in ("metrics", "alert")}
        elif view == "alert_only":
            nb = {k: v for k, v in nb.items() if k in ("alert", "job")}
        elif view == "truncated":
            logs = nb.get("logs", [])
            if logs:  # a log tail that was cut, as in a pasted issue
                keep = max(1, int(len(logs) * rng.uniform(0.4, 0.9)))
                start = rng.randint(0, len(logs) - keep)
                nb["logs"] = logs[start : start + keep]
            if nb.get("metrics"):
                nb["metrics"] = [m for m in nb["metrics"] if rng.random() < 0.5]
            if rng.random() < 0.5:
                nb.pop("job", None)
        elif view == "noisy":
            logs = nb.get("logs", [])
            for line in _noise_lines(rng, noise_pool, rng.randint(5, 30)):
                logs.insert(rng.randint(0, len(logs)), line)
            nb["logs"] = logs
        elif view == "concurrent" and other is not None:
            # another incident elsewhere in the cluster shows up in the same window; the alert still names this one
            logs = nb.get("logs", [])
            for line in (other.get("logs") or [])[:15]:
                logs.insert(rng.randint(0, len(logs)), line)
            nb["logs"] = logs
        if not nb or all(not v for v in nb.values()):
            continue
        yield Example(
            f"{ex.id}/{view}", ex.seed, ex.split, view, ex.root_cause, ex.culprit, nb, ex.variant, ex.culprit_aliases
        )


def examples_for_seed(seed: int, work: Path, views_per_incident: int = 2, controls: int = 3) -> list[Example]:
    from simulator.engine import Simulation
    from simulator.output import RunWriter
    from simulator.scenario import parse_scenario

    sc = parse_scenario(scenario_for(seed), f"dataset seed {seed}")
    run_dir = work / f"run-{seed}"
    sim = Simulation(sc, seed)
    with RunWriter(sim, run_dir) as w:
        assert sc.duration is not None
        sim.run(sc.duration, on_tick=w.tick)
    run = Run.load(run_dir)
    rng = random.Random(seed * 7919 + 1)
    split = split_of(seed)
    base: list[Example] = []
    for tr in run.truth:
        culprit = {k: str(v) for k, v in tr["culprit"].items()}
        bundle = bundle_for_truth(run, tr)
        if rng.random() < 0.85 and (alert := synth_alert(rng, tr["root_cause"], float(tr["onset_ts"]), culprit)):
            bundle["alert"] = alert
        aliases = {"gpu": [tr["gpu_bus_id"]]} if tr.get("gpu_bus_id") and "gpu" in culprit else {}
        base.append(
            Example(
                f"s{seed}/{tr['id']}", seed, split, "full", tr["root_cause"], culprit, bundle, tr["variant"], aliases
            )
        )
    for i, (t, node, job) in enumerate(_controls(run, rng, controls)):
        culprit = {"node": node} | ({"job": job} if job else {})
        bundle = bundle_for(run, t, node, job, quiet=True)
        if rng.random() < 0.5 and (alert := synth_alert(rng, UNKNOWN, t, culprit)):
            bundle["alert"] = alert
        base.append(Example(f"s{seed}/control{i}", seed, split, "full", UNKNOWN, {}, bundle))
    noise_pool = [
        ln for ex in base if ex.root_cause == UNKNOWN for ln in ex.bundle.get("logs", []) if ln["source"] != "slurmctld"
    ]
    out = list(base)
    for ex in base:
        others = [o for o in base if o.root_cause not in (ex.root_cause, UNKNOWN) and o.bundle.get("logs")]
        other = rng.choice(others).bundle if others else None
        out += views_of(rng, ex, noise_pool, other, views_per_incident)
    shutil.rmtree(run_dir, ignore_errors=True)
    return out


@dataclass(frozen=True)
class Row:
    split: str
    view: str
    root_cause: str
    size: int  # JSON characters of the bundle


def data_card(examples: list[Row], seeds: list[int], made: str) -> str:
    by = Counter((e.split, e.root_cause) for e in examples)
    views = Counter((e.split, e.view) for e in examples)
    lengths = sorted(e.size for e in examples)
    lines = [
        "# HPCMind root-cause dataset — data card",
        "",
        made,
        "",
        f"- runs (scenario seeds): {len(seeds)}; split by seed: test = seed % 5 == 0, val = seed % 5 == 1, "
        "train = the rest, so no incident of a test run is seen in training",
        f"- examples: {len(examples)} ({', '.join(f'{s} {sum(1 for e in examples if e.split == s)}' for s in SPLITS)})",
        f"- bundle size (JSON characters): p10 {lengths[len(lengths) // 10]}, median {lengths[len(lengths) // 2]}, "
        f"p90 {lengths[len(lengths) * 9 // 10]}, max {lengths[-1]}",
        "- every run: a small cluster from its seed (host prefix, GPU model, 4 or 8 GPUs, 1–4 HCAs, 6–9 nodes, "
        "15 or 30 s ticks, load, user failure rate 0–20 %, 1–6 confounders an hour: correctable ECC, link flaps that "
        "recover, harmless warnings); 9 of the 18 causes (a random draw per seed) scheduled once in random order "
        "and variant, 50 min apart; user failures of jobs are labelled incidents too",
        "- one incident at a time per node: a scheduled fault waits for a victim whose nodes had no fault in the last "
        "15 min (a shared-filesystem stall holds the whole cluster) and, for hardware faults, run no job still living "
        "through one, so two independent faults do not tangle in one bundle (about 4 % of scheduled faults find no "
        "victim before the run ends); a fault that needs ranks talking (collective hang, NVLink, fabric) only hits "
        "a job with more than one rank",
        "- an incident's evidence window: 5 min before the onset to 5 min after it or 1 min after its job ended "
        "(late failures), cut at the next incident on the same node or job; kernel logs of all the job's nodes",
        "- controls (`unknown`): windows with no fault in the 25 min before or 10 min after, on a node and a job "
        "no earlier fault touched and that still runs when the window closes; half with a false alarm "
        "(JobGPUsIdle, TrainingStepSlowdown)",
        "- views: full bundle (85 % with an alert the shipped rules raise for the cause), logs only, metrics only, "
        "alert only (causes with a specific alert), truncated logs and half the metrics, noise lines from quiet "
        "windows, a second incident's lines interleaved (only when the alert names this one)",
        "- labels: `root_cause`, `culprit` (node, GPU index, job: the keys the fault has) and `culprit_aliases` (the "
        "culprit GPU's PCI bus id, the other name `nvidia-smi -i` and the driver's Xid lines use for it)",
        "- the real incidents in bench/data are never used here (evaluation only)",
        "",
        "| root cause | train | val | test |",
        "|---|---:|---:|---:|",
    ]
    for c in (*root_cause_ids(), UNKNOWN):
        lines.append(f"| {c} | {by[('train', c)]} | {by[('val', c)]} | {by[('test', c)]} |")
    lines += ["", "| view | train | val | test |", "|---|---:|---:|---:|"]
    for v in VIEWS:
        lines.append(f"| {v} | {views[('train', v)]} | {views[('val', v)]} | {views[('test', v)]} |")
    return "\n".join(lines) + "\n"


def _one(args: tuple[int, str, int]) -> list[Example]:
    seed, tmp, views = args
    return examples_for_seed(seed, Path(tmp), views)


def build(
    out_dir: Path,
    seeds: list[int],
    views_per_incident: int = 2,
    workers: int = 2,
    progress: Callable[[int], object] | None = None,
) -> dict[str, int]:
    """Simulate every seed (in `workers` processes), write train/val/test JSON Lines and the data card."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {s: (out_dir / f"{s}.jsonl").open("w", encoding="utf-8") for s in SPLITS}
    everything: list[Row] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="hpcmind-dataset-") as tmp,
            multiprocessing.get_context("spawn").Pool(max(1, workers)) as pool,
        ):
            # imap keeps seed order, so the files are the same whatever the worker count
            for exs in pool.imap(_one, [(seed, tmp, views_per_incident) for seed in seeds]):
                for ex in exs:
                    files[ex.split].write(json.dumps(asdict(ex), separators=(",", ":")) + "\n")
                everything += [Row(e.split, e.view, e.root_cause, len(json.dumps(e.bundle))) for e in exs]
                if progress:
                    progress(1)
    finally:
        for f in files.values():
            f.close()
    made = (
        f"Made by `hpcmind train dataset --runs {len(seeds)}` (seeds {seeds[0]}–{seeds[-1]}), deterministic per seed."
    )
    (out_dir / "DATA_CARD.md").write_text(data_card(everything, seeds, made))
    return dict(Counter(e.split for e in everything))


def rows_of(out_dir: Path) -> list[Row]:
    """The card's facts from written split files (to rewrite the card without simulating again)."""
    rows = []
    for split in SPLITS:
        for raw in (out_dir / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            if raw.strip():
                d = json.loads(raw)
                rows.append(Row(d["split"], d["view"], d["root_cause"], len(json.dumps(d["bundle"]))))
    return rows


def load_split(path: Path) -> list[Example]:
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.strip():
            d = json.loads(raw)
            out.append(Example(**d))
    return out
