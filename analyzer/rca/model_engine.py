"""The fine-tuned root-cause engine: signatures + MiniLM head + SmolLM2-LoRA label scores, combined.

`mode` picks what takes part, so the benchmark can set every variant side by side on the same input:
  hpcmind    all three, weighted as `combiner.json` says (the default engine)
  finetuned  the LoRA-tuned LM alone
  base       the base LM zero-shot (same prompt, same label scoring, no adapter)
  encoder    the MiniLM head alone
Whatever picks the id, culprit, evidence and text come from the bundle (analyzer.rca.diagnosis).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Literal

from hpcmind.contract import Diagnosis, EvidenceBundle

from . import lm as lmmod
from .combine import Weights, combine, gated, pick, signature_probs, softmax_scores
from .diagnosis import build_diagnosis
from .encoder import ENCODER_NAME, Head, embed, load_encoder
from .findings import Finding, all_findings
from .render import render
from .signature_engine import ENGINE_NAME as SIGNATURES_NAME

Mode = Literal["hpcmind", "finetuned", "base", "encoder"]


class ModelEngine:
    def __init__(self, artifacts: Path, cache_dir: Path, mode: Mode = "hpcmind", load_all: bool = False) -> None:
        self.mode = mode
        self.labels = lmmod.labels()
        t0 = time.perf_counter()
        self.weights = Weights.load(artifacts / "combiner.json") if mode == "hpcmind" else Weights()
        self.head: Head | None = None
        self.encoder = None
        if mode == "encoder" or (mode == "hpcmind" and (self.weights.encoder > 0 or load_all)):
            self.head = Head.load(artifacts / "encoder_head.npz")
            self.encoder = load_encoder()
        self.lm: lmmod.LoadedLM | None = None
        if mode in ("finetuned", "base") or (mode == "hpcmind" and (self.weights.lm > 0 or load_all)):
            adapter = None if mode == "base" else artifacts / "adapter"
            if adapter is not None and not (adapter / "adapter_model.safetensors").exists():
                raise lmmod.ModelUnavailable(f"{adapter}: no trained adapter; run `hpcmind train rca` or `make model`")
            self.lm = lmmod.LoadedLM.load(cache_dir, adapter)
        self.load_seconds = time.perf_counter() - t0
        # one diagnosis at a time: two concurrent forwards on 2 cores are slower than two in a row
        self._lock = threading.Lock()
        parts = {
            "hpcmind": [
                self.lm.name if self.lm else "",
                f"{ENCODER_NAME} head" if self.head else "",
                SIGNATURES_NAME if self.weights.signatures > 0 else "",
            ],
            "finetuned": [self.lm.name if self.lm else ""],
            "base": [self.lm.name if self.lm else ""],
            "encoder": [f"{ENCODER_NAME} head (hpcmind-rca)"],
        }[mode]
        self.name = " + ".join(p for p in parts if p)
        if mode == "hpcmind":  # only the parts that carry weight are named
            w = self.weights
            self.name = " + ".join(p for p, on in zip(parts, (w.lm, w.encoder, w.signatures), strict=True) if p and on)

    def probabilities(self, bundle: EvidenceBundle, findings: list[Finding]) -> dict[str, float]:
        sig_p = signature_probs(findings, self.labels) if self.mode == "hpcmind" else None
        if sig_p is not None and gated(self.weights, self.labels, sig_p):  # signatures first: no model needed
            return {c: float(x) for c, x in zip(self.labels, sig_p, strict=True)}
        text = render(bundle)
        lm_p = softmax_scores(self.lm.score(text), self.labels) if self.lm is not None else None
        enc_p = None
        if self.head is not None and self.encoder is not None:
            enc_p = self.head.proba(embed(self.encoder, [text]))[0]
        p = combine(self.weights, self.labels, lm=lm_p, encoder=enc_p, signatures=sig_p)
        return {c: float(x) for c, x in zip(self.labels, p, strict=True)}

    def diagnose(self, bundle: EvidenceBundle) -> Diagnosis:
        t0 = time.perf_counter()
        findings = all_findings(bundle)
        with self._lock:
            probs = self.probabilities(bundle, findings)
        cause = pick(probs)
        return build_diagnosis(bundle, findings, cause, probs, self.name, t0)
