"""Root-cause analysis engines behind one interface: diagnose(bundle) -> Diagnosis."""

from __future__ import annotations

import sys

from hpcmind.settings import Settings

from .engine import DiagnosisEngine
from .signature_engine import SignatureEngine


def load_engine(settings: Settings, engine: str | None = None) -> DiagnosisEngine:
    """The configured engine (HPCMIND_MODEL__ENGINE, default `hpcmind`: the fine-tuned model combination).

    Without the ML extra or the weights package the default falls back to the signature engine, loudly; an
    explicitly chosen model engine that cannot load is an error.
    """
    m = settings.model
    name = engine or m.engine
    if name == "signatures":
        return SignatureEngine()
    if name == "openai":
        from .openai_engine import OpenAIEngine

        return OpenAIEngine(m.openai_base_url, m.openai_model, m.openai_api_key.get_secret_value(), mask=m.mask_remote)
    from .lm import ModelUnavailable
    from .model_engine import ModelEngine

    try:
        # lazy: the signatures answer at once; the fine-tuned encoder loads when first needed (or on warm())
        return ModelEngine(m.artifacts, m.cache_dir, name, lazy=True)  # type: ignore[arg-type]
    except (ModelUnavailable, FileNotFoundError) as exc:
        if name != "hpcmind":
            raise
        print(f"hpcmind: the fine-tuned model is unavailable ({exc}); using the signature engine", file=sys.stderr)
        return SignatureEngine()


__all__ = ["DiagnosisEngine", "SignatureEngine", "load_engine"]
