"""`hpcmind train rca`: the encoder head, the LoRA adapter and the combination weights, from the dataset.

1. Render every bundle (analyzer.rca.render — the same function inference uses).
2. Encoder: frozen MiniLM embeddings, logistic-regression head (seconds).
3. LM: SmolLM2-135M-Instruct (fp32 on CPUs without native bf16) + LoRA (peft) on the attention projections;
   the loss is only on the answer's id tokens (`<id>",`), exactly what label scoring reads at inference.
   Class-balanced batches, linear warm-up and decay, checkpoints every `checkpoint_every` steps (adapter +
   optimiser + step), so an interrupted run resumes where it stopped.
4. Combination weights on a validation sample; loss curve PNG, training.json and the model card.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hpcmind.contract import parse_bundle
from hpcmind.errors import UsageError
from hpcmind.settings import Settings

from ..rca import lm as lmmod
from ..rca.combine import fit_weights, signature_probs, softmax_scores
from ..rca.encoder import Head, embed, load_encoder
from ..rca.findings import all_findings
from ..rca.render import render
from .dataset import Example, examples_for_seed, load_split
from .model_card import model_card


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 300
    batch_size: int = 4
    lr: float = 1e-3
    warmup: int = 10
    rank: int = 8
    alpha: int = 16
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    seed: int = 1234
    checkpoint_every: int = 25
    val_lm: int = 190  # validation examples scored by the LM to fit the combination (10 per class)


SMOKE = TrainConfig(steps=4, batch_size=2, checkpoint_every=2, val_lm=8)


def _render_all(exs: Sequence[Example], desc: str) -> list[str]:
    return [render(parse_bundle(e.bundle)) for e in tqdm(exs, desc=f"render {desc}", unit="bundle", file=sys.stderr)]


def balanced_order(y: Sequence[str], n: int, seed: int) -> list[int]:
    """`n` indices cycling through the classes, each class's examples shuffled: rare classes are not drowned."""
    rng = random.Random(seed)
    by: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(y):
        by[c].append(i)
    pools = {c: [] for c in sorted(by)}  # type: dict[str, list[int]]
    out: list[int] = []
    classes = sorted(by)
    while len(out) < n:
        rng.shuffle(classes)
        for c in classes:
            if not pools[c]:
                pools[c] = by[c][:]
                rng.shuffle(pools[c])
            out.append(pools[c].pop())
    return out[:n]


def _encode_example(lm: lmmod.LoadedLM, text: str, label: str, n_prefix: int) -> tuple[list[int], list[int]]:
    """Loss on the answer's opening and the id (`{"root_cause": "<id>",`): label scoring reads the id, and a
    served copy of the merged model (the openai backend) starts its reply the same way."""
    prompt = lm.prompt_ids(text)
    answer = lm.label_ids([label])[0]
    head = len(prompt) - n_prefix
    return prompt + answer, [-100] * head + prompt[head:] + answer


def _batch(rows: list[tuple[list[int], list[int]]], pad: int) -> dict[str, Any]:
    import torch

    width = max(len(r[0]) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def train_lora(
    cache_dir: Path, texts: list[str], y: list[str], out: Path, cfg: TrainConfig, resume: bool
) -> list[dict[str, float]]:
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    torch.manual_seed(cfg.seed)
    base = lmmod.LoadedLM.load(cache_dir)
    model = get_peft_model(
        base.model,
        LoraConfig(
            r=cfg.rank,
            lora_alpha=cfg.alpha,
            lora_dropout=0.0,
            target_modules=list(cfg.targets),
            task_type="CAUSAL_LM",
        ),
    )
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * max(0.02, 1 - s / cfg.steps)
    )
    ckpt = out / "checkpoint"
    log_path = out / "train_log.jsonl"
    start, log = 0, []
    if resume and (ckpt / "state.pt").exists():
        state = torch.load(ckpt / "state.pt", weights_only=False)
        if state["config"] == asdict(cfg):
            set_peft_model_state_dict(model, load_file(str(ckpt / "adapter_model.safetensors")))
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start = state["step"]
            log = [json.loads(x) for x in log_path.read_text().splitlines()][:start] if log_path.exists() else []
            print(f"resuming from step {start} ({ckpt})", file=sys.stderr)
        else:
            print(f"{ckpt}: made with another configuration; starting over", file=sys.stderr)
    order = balanced_order(y, cfg.steps * cfg.batch_size, cfg.seed)
    pad = base.tokenizer.pad_token_id or 0
    # the prompt's last tokens are the answer's opening (checked: they decode to exactly ANSWER_PREFIX)
    n_prefix = len(base.tokenizer(lmmod.ANSWER_PREFIX, add_special_tokens=False)["input_ids"])
    model.train()
    with tqdm(total=cfg.steps, initial=start, desc="LoRA", unit="step", file=sys.stderr) as bar:
        for step in range(start, cfg.steps):
            t0 = time.perf_counter()
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            batch = _batch([_encode_example(base, texts[i], y[i], n_prefix) for i in idx], pad)
            loss = model(**batch).loss
            loss.backward()
            grad = float(torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0))
            opt.step()
            sched.step()
            opt.zero_grad()
            rec = {
                "step": step + 1,
                "loss": float(loss.detach()),
                "grad_norm": grad,
                "lr": sched.get_last_lr()[0],
                "seconds": time.perf_counter() - t0,
                "tokens": int(batch["attention_mask"].sum()),
            }
            log.append(rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
            bar.update(1)
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                model.save_pretrained(str(ckpt))
                torch.save(
                    {
                        "config": asdict(cfg),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "step": step + 1,
                    },
                    ckpt / "state.pt",
                )
                log_path.write_text("".join(json.dumps(r) + "\n" for r in log))
    adapter = out / "adapter"
    model.save_pretrained(str(adapter))
    for extra in adapter.glob("README.md"):
        extra.unlink()  # peft's template card; the model card lives beside the adapter
    return log


def plot_loss(
    log: list[dict[str, float]],
    path: Path,
    title: str = "LoRA fine-tuning of SmolLM2-135M-Instruct on simulated incidents",
    ylabel: str = "cross-entropy on the answer tokens (nats)",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in log]
    loss = [r["loss"] for r in log]
    k = max(1, len(loss) // 20)
    smooth = [float(np.mean(loss[max(0, i - k + 1) : i + 1])) for i in range(len(loss))]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, loss, alpha=0.3, label="loss per step")
    ax.plot(steps, smooth, label=f"mean of {k} steps")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _smoke_data(tmp: Path) -> tuple[list[Example], list[Example]]:
    exs = examples_for_seed(2, tmp, views_per_incident=0, controls=1) + examples_for_seed(
        1, tmp, views_per_incident=0, controls=1
    )
    return [e for e in exs if e.seed == 2], [e for e in exs if e.seed == 1]


def run(args: argparse.Namespace, settings: Settings) -> int:
    out: Path = args.out or settings.model.artifacts
    cache: Path = settings.model.cache_dir
    cfg = SMOKE if args.smoke else TrainConfig()
    if args.steps is not None:
        if args.steps < 1:
            raise UsageError("--steps: must be at least 1")
        cfg = TrainConfig(**(asdict(cfg) | {"steps": args.steps}))
    t_start = time.perf_counter()
    if args.refit_combiner:
        return refit_combiner(args.data, out, cache)
    if args.smoke:
        tmp = Path(tempfile.mkdtemp(prefix="hpcmind-smoke-"))
        train, val = _smoke_data(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        for name in ("train", "val"):
            if not (args.data / f"{name}.jsonl").exists():
                raise UsageError(f"--data {args.data}: no {name}.jsonl; run `hpcmind train dataset --out {args.data}`")
        train, val = load_split(args.data / "train.jsonl"), load_split(args.data / "val.jsonl")
    out.mkdir(parents=True, exist_ok=True)
    labels = lmmod.labels()
    tr_text, va_text = _render_all(train, "train"), _render_all(val, "val")
    tr_y, va_y = [e.root_cause for e in train], [e.root_cause for e in val]

    # 2. encoder head
    st = load_encoder()
    e_tr = embed(st, tr_text, progress=True)
    e_va = embed(st, va_text, progress=True)
    head = Head.fit(e_tr, tr_y, labels)
    head.save(out / "encoder_head.npz")
    enc_val = head.proba(e_va)
    enc_acc = top1(enc_val, va_y)
    print(f"encoder head: validation top-1 {enc_acc:.3f} on {len(va_y)}", file=sys.stderr)

    # 3. LoRA
    t_lora = time.perf_counter()
    log = train_lora(cache, tr_text, tr_y, out, cfg, resume=not args.no_resume)
    lora_s = time.perf_counter() - t_lora
    plot_loss(log, out / "loss.png")

    # 4. combination weights on a class-balanced validation sample
    validation = fit_combination(cache, out, val, va_text, enc_val, cfg)
    summary = {
        "config": asdict(cfg),
        "smoke": bool(args.smoke),
        "train_examples": len(train),
        "train_classes": dict(sorted(Counter(tr_y).items())),
        **validation,
        "lora_seconds": round(lora_s, 1),
        "seconds_per_step": round(float(np.mean([r["seconds"] for r in log])) if log else 0.0, 2),
        "final_loss_mean_last_10": round(float(np.mean([r["loss"] for r in log[-10:]])) if log else 0.0, 4),
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "adapter_sha256": lmmod.adapter_hash(out / "adapter"),
    }
    write_summary(out, summary)
    print(json.dumps(summary, indent=2))
    return 0


def top1(probs: np.ndarray, y: Sequence[str]) -> float:
    labels = lmmod.labels()
    return float(np.mean([labels[j] == c for j, c in zip(probs.argmax(1), y, strict=True)]))


def fit_combination(
    cache: Path, out: Path, val: list[Example], va_text: list[str], enc_val: np.ndarray, cfg: TrainConfig
) -> dict[str, Any]:
    """Weights of LM, encoder and signatures on a class-balanced validation sample; writes combiner.json and
    returns the validation part of training.json."""
    labels = lmmod.labels()
    va_y = [e.root_cause for e in val]
    tuned = lmmod.LoadedLM.load(cache, out / "adapter")
    pick = _per_class(va_y, cfg.val_lm, cfg.seed)
    lm_p = np.stack(
        [softmax_scores(tuned.score(va_text[i]), labels) for i in tqdm(pick, desc="LM on val", file=sys.stderr)]
    )
    sig_p = np.stack([signature_probs(all_findings(parse_bundle(val[i].bundle)), labels) for i in pick])
    ys = [va_y[i] for i in pick]
    weights, comb_acc = fit_weights(labels, ys, lm_p, enc_val[pick], sig_p)
    weights.save(out / "combiner.json")
    return {
        "val_examples": len(val),
        "encoder_val_top1": round(top1(enc_val, va_y), 4),
        "lm_val_top1_sample": round(top1(lm_p, ys), 4),
        "combined_val_top1_sample": round(comb_acc, 4),
        "val_sample": len(pick),
        "weights": asdict(weights),
    }


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "MODEL_CARD.md").write_text(model_card(summary))


def refit_combiner(data: Path, out: Path, cache: Path) -> int:
    """Only step 4 again (e.g. after the signature engine or the dataset's alerts changed): the adapter and the
    encoder head stay as they are."""
    summary = json.loads((out / "training.json").read_text())
    cfg = TrainConfig(**(summary["config"] | {"targets": tuple(summary["config"]["targets"])}))
    val = load_split(data / "val.jsonl")
    va_text = _render_all(val, "val")
    enc_val = Head.load(out / "encoder_head.npz").proba(embed(load_encoder(), va_text, progress=True))
    validation = fit_combination(cache, out, val, va_text, enc_val, cfg)
    summary |= validation
    write_summary(out, summary)
    print(json.dumps(validation, indent=2))
    return 0


def _per_class(y: Sequence[str], n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    by: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(y):
        by[c].append(i)
    per = max(1, n // max(1, len(by)))
    out: list[int] = []
    for c in sorted(by):
        out += rng.sample(by[c], min(per, len(by[c])))
    return sorted(out)
