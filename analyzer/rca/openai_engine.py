"""A remote OpenAI-compatible endpoint (vLLM serving the merged model on a GPU, or any compatible server).

The same rendered evidence and system prompt as the in-process model go out, masked first (secrets,
e-mail, IP addresses). Only the root-cause id is taken from the reply, and only if it is a valid id —
anything else reads as `unknown` — so the answer stays valid whatever the server says. Culprit, evidence
and text come from the local bundle. If the endpoint fails, the signature engine answers and says so.
"""

from __future__ import annotations

import re
import time

import httpx

from hpcmind.contract import Diagnosis, EvidenceBundle
from hpcmind.taxonomy import UNKNOWN

from . import lm as lmmod
from .diagnosis import build_diagnosis
from .findings import all_findings
from .masking import Masker
from .render import render
from .signature_engine import SignatureEngine

_FIELD = re.compile(r'"root_cause"\s*:\s*"([A-Za-z_]+)"')


def parse_reply(text: str, labels: tuple[str, ...]) -> str:
    """The id the reply names: the JSON field if present, else the first id mentioned, else unknown."""
    if (m := _FIELD.search(text)) and m[1] in labels:
        return m[1]
    hits = [(text.find(lab), lab) for lab in labels if re.search(rf"\b{lab}\b", text)]
    return min(hits)[1] if hits else UNKNOWN


class OpenAIEngine:
    def __init__(self, base_url: str, model: str, api_key: str = "", mask: bool = True, timeout: float = 30.0) -> None:
        if not base_url or not model:
            raise ValueError("the openai engine needs HPCMIND_MODEL__OPENAI_BASE_URL and HPCMIND_MODEL__OPENAI_MODEL")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.mask = model, mask
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=timeout, headers=headers)
        self.name = f"openai-compatible {model} at {base_url}"
        self.labels = lmmod.labels()
        self.last_request: dict[str, object] | None = None  # what left the process, for audit and tests

    def close(self) -> None:
        self.client.close()

    def ask(self, evidence: str) -> str:
        masker = Masker()
        content = masker.mask(evidence) if self.mask else evidence
        body = {
            "model": self.model,
            "messages": [*lmmod.messages(content)[:1], {"role": "user", "content": content}],
            "temperature": 0.0,
            "max_tokens": 32,
        }
        self.last_request = body
        r = self.client.post(self.url, json=body)
        r.raise_for_status()
        reply = str(r.json()["choices"][0]["message"]["content"] or "")
        return masker.unmask(reply)

    def diagnose(self, bundle: EvidenceBundle) -> Diagnosis:
        t0 = time.perf_counter()
        findings = all_findings(bundle)
        try:
            reply = self.ask(render(bundle))
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            d = SignatureEngine().diagnose(bundle)
            return d.model_copy(update={"model": f"{d.model} (endpoint failed: {type(exc).__name__}: {exc})"[:300]})
        cause = parse_reply(reply, self.labels)
        # a remote pick carries no calibrated probability: report it as an even bet
        probs = {cause: 0.5}
        return build_diagnosis(bundle, findings, cause, probs, self.name, t0, others=[])
