"""Simulator: scenario validation, determinism, Slurm semantics and the metric catalogue."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import polars as pl
import pytest

from hpcmind.metric_catalog import CatalogError, catalog, parse_catalog
from simulator.engine import Simulation
from simulator.output import RunWriter
from simulator.scenario import builtin_scenario, load_scenario, parse_scenario
from tests.conftest import ROOT, run_cli

SMALL = {
    "name": "small",
    "seed": 5,
    "tick_seconds": 15,
    "cluster": {"partitions": [{"name": "gpu", "nodes": 3, "node_prefix": "n", "gpus_per_node": 4, "ib_hcas": 2}]},
    "workload": {"arrivals_per_hour": 20, "user_failure_rate": 0.4, "mean_runtime": "20m"},
    "faults": {"random": {"time_compression": 20000}, "cascade_scale": 0.2},
}


def _run(tmp: Path, data: dict[str, object], duration: float) -> Path:
    sim = Simulation(parse_scenario(data))
    with RunWriter(sim, tmp) as w:
        sim.run(duration, on_tick=w.tick)
    return tmp


def _digest(d: Path) -> str:
    h = hashlib.sha256()
    for name in ("metrics.parquet", "logs.jsonl", "ground_truth.jsonl"):
        h.update((d / name).read_bytes())
    return h.hexdigest()


def test_same_seed_byte_identical(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", SMALL, 3600)
    b = _run(tmp_path / "b", SMALL, 3600)
    assert _digest(a) == _digest(b)
    c = _run(tmp_path / "c", {**SMALL, "seed": 6}, 3600)
    assert _digest(a) != _digest(c)


def test_every_emitted_metric_is_in_the_catalogue(tmp_path: Path) -> None:
    d = _run(tmp_path, SMALL, 2 * 3600)
    m = pl.read_parquet(d / "metrics.parquet").with_columns(
        pl.col("name").cast(pl.String), pl.col("labels").cast(pl.String)
    )
    cat = catalog()
    seen = m.select("name", "labels").unique()
    for name, labels in seen.iter_rows():
        keys = set(json.loads(labels))
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert base in cat, f"{name} not in the catalogue"
        allowed = set(cat[base].labels) | ({"hpc_job"} if base.startswith("DCGM_FI_") else set())
        allowed |= {"le"} if name.endswith("_bucket") else set()
        assert keys <= allowed, f"{name}: labels {keys - allowed} not in the catalogue"
        assert set(cat[base].labels) - {"err_code", "err_msg"} <= keys | {"err_code", "err_msg"}


def _in_reference(name: str, ref: str) -> bool:
    """The reference abbreviates families on one line: "DCGM_FI_DEV_FB_FREE / FB_USED", "slurm_nodes_alloc, _idle"."""
    if name in ref:
        return True
    family = next(
        (f for f in ("DCGM_FI_DEV_", "DCGM_FI_PROF_", "node_infiniband_", "node_", "slurm_") if name.startswith(f)),
        None,
    )
    if family is None:
        return False
    parts = name[len(family) :].split("_")
    # every line of a section that names the family (its tables list suffixes under a family header)
    lines = [ln for sec in ref.split("\n### ") if family in sec for ln in sec.splitlines()]
    for i in range(len(parts)):
        tail = re.escape("_".join(parts[i:]))
        # the whole name after the family, or an abbreviation: "FB_FREE / FB_USED", "_alloc, _idle", "| state_id |"
        pat = rf"\b{tail}\b" if i == 0 else rf"(?:/ ?_?{tail}\b|, _{tail}\b|^\| {tail}\b)"
        if any(re.search(pat, ln) for ln in lines):
            return True
    return False


def test_catalogue_names_exist_in_the_exporters_reference() -> None:
    ref = (ROOT / "docs" / "reference" / "gpu-cluster-signals.md").read_text()
    for name, d in catalog().items():
        if d.source in ("hpcmind", "astro"):
            assert name.startswith(("hpcmind_", "astro_")), name
            continue
        assert _in_reference(name.removesuffix("_total") if d.source == "vllm" else name, ref), name


def test_catalogue_parser_names_the_bad_line() -> None:
    with pytest.raises(CatalogError, match=r"x.csv:2: unknown type"):
        parse_catalog("a,gauge,u,,s,h\nb,wibble,u,,s,h\n", "x.csv")


def test_slurm_states_and_failure_share(tmp_path: Path) -> None:
    d = _run(tmp_path, {**SMALL, "faults": {"random": {"enabled": False}}}, 12 * 3600)
    m = pl.read_parquet(d / "metrics.parquet").with_columns(
        pl.col("name").cast(pl.String), pl.col("labels").cast(pl.String)
    )
    info = m.filter(pl.col("name") == "hpcmind_slurm_job_info")["labels"].unique().to_list()
    final: dict[str, dict[str, str]] = {}
    for lb in info:
        d_ = json.loads(lb)
        if d_["state"] not in ("PENDING", "RUNNING"):
            final[d_["job_id"]] = d_
    states = {v["state"] for v in final.values()}
    assert states <= {"COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "CANCELLED"}
    gpu_jobs = [v for v in final.values() if v["gpus"] != "0"]
    failed = sum(v["state"] in ("FAILED", "OUT_OF_MEMORY", "TIMEOUT") for v in gpu_jobs)
    assert len(gpu_jobs) >= 20
    assert 0.2 <= failed / len(gpu_jobs) <= 0.7  # published traces: ~40% of GPU jobs end FAILED
    exit_codes = {v["state"]: v["exit_code"] for v in final.values()}
    assert exit_codes.get("COMPLETED", "0:0") == "0:0"
    assert exit_codes.get("OUT_OF_MEMORY", "0:125") == "0:125"


def test_node_names_and_shipped_scenarios() -> None:
    for name in ("demo", "one-of-each", "large", "quiet"):
        sc = load_scenario(builtin_scenario(name))
        assert sc.name == name
    sim = Simulation(load_scenario(builtin_scenario("demo")))
    assert sim.topo.node_names[:2] == ["gpu-a001", "gpu-a002"]
    assert "cpu-001" in sim.topo.node_names


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"tick_seconds": -1}, "tick_seconds"),
        ({"cluster": {"partitions": [{"name": "g", "nodes": 0}]}}, "cluster.partitions[0].nodes"),
        ({"faults": {"scheduled": [{"at": "10m", "root_cause": "gremlins"}]}}, "faults.scheduled[0].root_cause"),
        ({"faults": {"scheduled": [{"at": "soon", "root_cause": "gpu_oom"}]}}, "faults.scheduled[0].at"),
        (
            {"cluster": {"partitions": [{"name": "g", "nodes": 1, "gpu_model": "V100"}]}},
            "cluster.partitions[0].gpu_model",
        ),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_scenario_names_the_field(tmp_path: Path, patch: dict[str, object], field: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(json.dumps({**SMALL, **patch}))
    res = run_cli("simulate", "--scenario", str(f), "--duration", "1m", "--out", str(tmp_path / "o"))
    assert res.returncode == 2
    assert f"{f}: {field}:" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_simulate_cli_writes_the_run(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(json.dumps(SMALL))
    res = run_cli("simulate", "--scenario", str(f), "--duration", "30m", "--out", str(tmp_path / "o"))
    assert res.returncode == 0, res.stderr
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"metrics.parquet", "logs.jsonl", "ground_truth.jsonl"}
    res = run_cli("simulate", "--scenario", str(f), "--duration", "later", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "--duration" in res.stderr


def test_bench_simulator_writes_results(tmp_path: Path) -> None:
    from simulator.bench import run

    result = run(tmp_path, sizes=(4, 8), seconds=300)
    saved = json.loads((tmp_path / "simulator.json").read_text())
    assert saved == result
    assert [r["nodes"] for r in saved["results"]] == [4, 8]
    assert all(r["speedup_x"] > 0 and r["peak_rss_mb"] > 0 and r["samples"] > 0 for r in saved["results"])
    assert (tmp_path / "simulator.md").read_text().startswith("# Simulator benchmark")
