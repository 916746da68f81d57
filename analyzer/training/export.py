"""`hpcmind train export`: base model with the adapter merged in, ready for an OpenAI-compatible server.

The directory is a plain transformers checkpoint (bf16 safetensors, tokenizer, chat template), so
`vllm serve DIR` on a GPU or `transformers serve DIR` on CPU can serve it; point the analyzer at it with
HPCMIND_MODEL__ENGINE=openai, HPCMIND_MODEL__OPENAI_BASE_URL=http://host:port/v1, HPCMIND_MODEL__OPENAI_MODEL=DIR.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..rca import lm as lmmod


def export_merged(cache_dir: Path, adapter: Path, out: Path) -> Path:
    if not (adapter / "adapter_model.safetensors").exists():
        raise lmmod.ModelUnavailable(f"{adapter}: no adapter_model.safetensors to merge")
    loaded = lmmod.LoadedLM.load(cache_dir, adapter, merge=True)
    out.mkdir(parents=True, exist_ok=True)
    loaded.model.save_pretrained(str(out))
    loaded.tokenizer.save_pretrained(str(out))
    (out / "hpcmind-export.json").write_text(
        json.dumps(
            {
                "model": loaded.name,
                "adapter_sha256": lmmod.adapter_hash(adapter),
                "system_prompt": lmmod.system_prompt(),
                "answer_prefix": lmmod.ANSWER_PREFIX,
                "labels": list(lmmod.labels()),
            },
            indent=2,
        )
        + "\n"
    )
    return out
