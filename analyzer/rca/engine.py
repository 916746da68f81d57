"""The one interface every diagnosis engine implements."""

from __future__ import annotations

from typing import Protocol

from hpcmind.contract import Diagnosis, EvidenceBundle


class DiagnosisEngine(Protocol):
    name: str

    def diagnose(self, bundle: EvidenceBundle) -> Diagnosis: ...
