"""Root-cause analysis engines behind one interface: diagnose(bundle) -> Diagnosis."""

from __future__ import annotations

from hpcmind.settings import Settings

from .engine import DiagnosisEngine
from .signature_engine import SignatureEngine


def load_engine(settings: Settings) -> DiagnosisEngine:
    """The configured engine. Until the fine-tuned model ships, every setting resolves to signatures."""
    return SignatureEngine()


__all__ = ["DiagnosisEngine", "SignatureEngine", "load_engine"]
