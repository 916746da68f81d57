"""The learned root-cause engines: signatures first, then the fine-tuned encoder (or the first design's mix).

`mode` picks what takes part, so the benchmark can set every variant side by side on the same input:
  hpcmind    signatures first; where they are silent or unsure, the fine-tuned encoder with calibrated
             abstention (the default engine). Without a fine-tuned encoder: the three opinions weighted as
             `combiner.json` says
  finetuned  the LoRA-tuned LM alone
  base       the base LM zero-shot (same prompt, same label scoring, no adapter)
  encoder    the learned layer alone: the fine-tuned encoder (LoRA + head, trained on simulator bundles and the
             template corpus) with its abstention threshold; the frozen-MiniLM head where none is trained
Whatever picks the id, culprit, evidence and text come from the bundle (analyzer.rca.diagnosis).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from pathlib import Path
from typing import Literal

import numpy as np

from hpcmind.contract import Diagnosis, EvidenceBundle
from hpcmind.taxonomy import UNKNOWN

from . import lm as lmmod
from .combine import Weights, combine, gated, pick, signature_probs, softmax_scores
from .contradictions import ruled_out
from .diagnosis import build_diagnosis
from .encoder import ENCODER_NAME, Head, embed, load_encoder
from .findings import Finding, all_findings
from .render import render
from .signature_engine import ENGINE_NAME as SIGNATURES_NAME
from .tuned_encoder import DIRNAME as TUNED_DIR
from .tuned_encoder import Classifier, encoder_hash, load_threshold

Mode = Literal["hpcmind", "finetuned", "base", "encoder"]
log = logging.getLogger("hpcmind.rca")


class ModelEngine:
    def __init__(
        self, artifacts: Path, cache_dir: Path, mode: Mode = "hpcmind", load_all: bool = False, lazy: bool = False
    ) -> None:
        """`lazy`: the fine-tuned encoder loads on the first bundle the signatures leave open (or on `warm()`), so
        a process that only needs the signatures (most `hpcmind diagnose` calls, the analyzer's first seconds)
        never waits for it."""
        self.mode = mode
        self.labels = lmmod.labels()
        t0 = time.perf_counter()
        # the three-opinion weights of the first design (`mix` in the bench; the default without a tuned encoder)
        self.mix_weights = Weights.load(artifacts / "combiner.json") if mode == "hpcmind" else Weights()
        self.weights = self.mix_weights
        self.head: Head | None = None
        self.encoder = None
        self.tuned: Classifier | None = None
        self.threshold = 1.0
        self._artifacts = artifacts
        self._tuned_on = mode in ("hpcmind", "encoder") and (artifacts / TUNED_DIR / "head.json").exists()
        self._load_lock = threading.Lock()
        self._loading = False
        self.failure = ""
        if self._tuned_on:
            if lazy:
                missing = [m for m in ("torch", "transformers", "peft") if importlib.util.find_spec(m) is None]
                if missing:
                    raise lmmod.ModelUnavailable(f"the fine-tuned encoder needs {', '.join(missing)} (the ML extra)")
            else:
                self.tuned = Classifier.load(artifacts)
            self.threshold = load_threshold(artifacts)
            # the fine-tuned encoder replaces the frozen head and the LM here: it reads real formats better and keeps
            # p95 under a second on 2 cores (the LM needs ~1 s per bundle, far more on a loaded machine)
            sig_w = 1.0 if mode == "hpcmind" else 0.0
            self.weights = Weights(lm=0.0, encoder=1.0, signatures=sig_w, gate=self.mix_weights.gate)
        frozen = not self._tuned_on and (mode == "encoder" or (mode == "hpcmind" and self.weights.encoder > 0))
        if frozen or load_all:
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
        enc_name = (
            f"{ENCODER_NAME}+LoRA (hpcmind-rca, sha256:{encoder_hash(artifacts)[:16]})"
            if self._tuned_on
            else f"{ENCODER_NAME} head (hpcmind-rca)"
        )
        parts = {
            "hpcmind": [
                self.lm.name if self.lm and not self._tuned_on else "",
                enc_name if (self.head or self._tuned_on) else "",
                SIGNATURES_NAME if self.weights.signatures > 0 else "",
            ],
            "finetuned": [self.lm.name if self.lm else ""],
            "base": [self.lm.name if self.lm else ""],
            "encoder": [enc_name],
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
        if self._tuned_on:
            clf = self._classifier()
            if clf is None:  # it failed to load: the signatures answer alone, and the failure is logged once
                p = sig_p if sig_p is not None else signature_probs(findings, self.labels)
                return {c: float(x) for c, x in zip(self.labels, p, strict=True)}
            return decide(self.labels, clf.proba([text])[0], sig_p, self.threshold, ruled_out(bundle))
        lm_p = softmax_scores(self.lm.score(text), self.labels) if self.lm is not None else None
        enc_p = None
        if self.head is not None and self.encoder is not None and self.weights.encoder > 0:
            enc_p = self.head.proba(embed(self.encoder, [text]))[0]
        p = combine(self.weights, self.labels, lm=lm_p, encoder=enc_p, signatures=sig_p)
        return {c: float(x) for c, x in zip(self.labels, p, strict=True)}

    def _classifier(self) -> Classifier | None:
        if self.tuned is None and not self.failure:
            self.warm()
        return self.tuned

    def warm(self) -> None:
        """Load what a lazy engine deferred (idempotent, thread-safe; the analyzer calls it in the background)."""
        if not self._tuned_on:
            return
        with self._load_lock:
            if self.tuned is not None or self.failure:
                return
            self._loading = True
            t0 = time.perf_counter()
            try:
                self.tuned = Classifier.load(self._artifacts)
            except Exception as exc:  # a broken install must not stop diagnosis: the signatures still answer
                self.failure = f"{type(exc).__name__}: {exc}"
                log.error("the fine-tuned encoder failed to load (%s); diagnosing with the signatures alone", exc)
            finally:
                self._loading = False
            self.load_seconds += time.perf_counter() - t0

    @property
    def state(self) -> str:
        """ready | loading | not loaded | failed (the signatures answer alone)."""
        if self.failure:
            return "failed"
        if not self._tuned_on or self.tuned is not None:
            return "ready"
        return "loading" if self._loading else "not loaded"

    def diagnose(self, bundle: EvidenceBundle) -> Diagnosis:
        t0 = time.perf_counter()
        findings = all_findings(bundle)
        with self._lock:
            probs = self.probabilities(bundle, findings)
        cause = pick(probs)
        # a diagnosis names what actually answered: after a failed load that is the signatures alone
        name = f"{SIGNATURES_NAME} (the learned model failed to load)" if self.failure else self.name
        return build_diagnosis(bundle, findings, cause, probs, name, t0)


def decide(
    labels: tuple[str, ...],
    enc: np.ndarray,
    sig: np.ndarray | None,
    threshold: float,
    excluded: dict[str, str] | None = None,
) -> dict[str, float]:
    """The learned layer's answer with calibrated abstention.

    Where the signatures name a cause below the gate, their evidence and the encoder's are multiplied; where they
    are silent (their top is `unknown`), the encoder reads alone — the signatures' unknown mass would otherwise
    drown every wording they lack a row for. Causes the bundle's own numbers rule out (`excluded`, from
    analyzer.rca.contradictions) lose their share. A cause below the threshold (fitted on held-out templates) is
    `unknown`."""
    p = enc
    if sig is not None and labels[int(sig.argmax())] != UNKNOWN:
        p = combine(Weights(lm=0.0, encoder=1.0, signatures=1.0), labels, encoder=enc, signatures=sig)
    if excluded:
        p = p.copy()
        for c in excluded:
            if c in labels:
                p[labels.index(c)] = 0.0
        p = p / max(float(p.sum()), 1e-12)
    j = int(p.argmax())
    out = {c: float(x) for c, x in zip(labels, p, strict=True)}
    if labels[j] != UNKNOWN and p[j] < threshold:
        out[UNKNOWN] = float(p[j]) + 1e-6
        total = sum(out.values())
        out = {c: v / total for c, v in out.items()}
    return out
