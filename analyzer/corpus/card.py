"""The corpus data card (docs/rca-corpus.md), made from the catalogue itself so it cannot drift."""

from __future__ import annotations

from collections import Counter, defaultdict

from hpcmind.taxonomy import UNKNOWN, root_cause_ids

from .catalog import checked as checked_level
from .catalog import sources, templates
from .compose import template_split


def card() -> str:
    ts = templates()
    srcs = sources()
    checked = Counter(checked_level(t) for t in ts)
    by_key = Counter(t.src.split(":", 1)[0] for t in ts)
    roles: dict[str, Counter[str]] = defaultdict(Counter)
    for t in ts:
        roles[t.cause if t.role != "symptom" or t.alone == UNKNOWN else t.alone][t.role] += 1
    held = Counter(template_split(t) for t in ts if t.role != "healthy")
    lines = [
        "# HPCMind template corpus — data card",
        "",
        "Generated from `analyzer/corpus/catalog/` by `analyzer.corpus.card` (a test keeps this file current).",
        "",
        "**What it is.** The emitters' own message formats — NCCL, PyTorch (c10d, ProcessGroupNCCL, TCPStore, elastic,",
        "CUDA caching allocator, CUDA errors, DataLoader), NVIDIA's Xid catalogue, DCGM health and diagnostics,",
        "nvidia-smi, the NVIDIA container toolkit, enroot and apptainer, Slurm (slurmstepd, srun, slurmctld, sacct,",
        "scontrol), the Linux kernel (OOM killer, hung tasks, file systems, NVMe, NFS, mlx5), fabric manager and",
        "NVSwitch, vLLM, SGLang, TensorRT-LLM, TGI, DeepSpeed, fairseq, Lightning, mmengine, UCX, Ray, Kubernetes,",
        "PBS/LSF/SGE, cloud preemption notices — each as a template with realistic fills, labelled with the taxonomy",
        "as a root signal, a symptom (with the causes it follows and what it means alone) or healthy chatter.",
        "",
        "**Provenance.** Every row names its source (`sources.yaml`): a repository, commit and path (and line where",
        "the snapshot was searched), or — for closed-source emitters — the vendor documentation. Real incident logs",
        "(issue threads, `bench/data/*.jsonl`) are never a source; a test checks that no real line carrying an",
        "incident's values appears in a template.",
        "",
        f"- templates: {len(ts)} ({sum(1 for t in ts if t.id.startswith('xid-'))} from the Xid catalogue)",
        f"- provenance: {checked['grep']} found by searching the repository snapshot at the cited commit (path:line),",
        f"  {checked['path']} cite the emitting file of a repository at the cited commit (the file located, the",
        "  message's wording not searched for line by line),",
        f"  {checked['docs']} from vendor documentation (no public source)",
        f"- split by template id (sha256): {held['train']} root/symptom wordings for training, {held['val']} held out",
        "  for validation, so the abstention threshold is fitted on wordings the model never saw",
        "- composition (`compose.py`): a root line among its symptoms and healthy chatter; cascades whose loudest,",
        "  rank-repeated lines are symptoms; a symptom alone; healthy bundles full of trigger words; launcher prefixes",
        "  (`[rankN]:`, srun `N: `, Ray `(pid=…)`, timestamps, host names), truncation, kernel and controller sources,",
        "  and a Slurm job record (state, reason, exit code) on 30 % of bundles",
        "",
        "| root cause | root | symptom (label when alone) | healthy |",
        "|---|---:|---:|---:|",
    ]
    for c in (*root_cause_ids(), UNKNOWN):
        r = roles.get(c, Counter())
        lines.append(f"| {c} | {r['root']} | {r['symptom']} | {r['healthy']} |")
    lines += ["", "| source | templates | repository or document | checked |", "|---|---:|---|---|"]
    for key, n in sorted(by_key.items(), key=lambda kv: (-kv[1], kv[0])):
        s = srcs[key]
        where = f"{s['repo']}@{s['commit'][:12]}" if "repo" in s else s["doc"]
        lines.append(f"| {key} | {n} | {where} | {s['checked']} |")
    return "\n".join(lines) + "\n"
