"""Reversible masking of secrets, tokens, e-mail and IP addresses before evidence leaves the process.

Each distinct value becomes a stable placeholder (`<IP_1>`, `<EMAIL_2>`, ...), so the remote model still
sees that two lines name the same host; `unmask` puts the originals back into whatever comes back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# secrets that must never be shown or stored in output, whoever reads it (pages, API, annotations, notifications)
SECRETS: list[re.Pattern[str]] = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:.*?-----END [A-Z ]*PRIVATE KEY-----|.*)", re.DOTALL),
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in a URL
]

# order matters: a token that embeds an e-mail or an address is masked whole
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    # NAME=value where the name ends in a secret word: PASSWORD=, WANDB_API_KEY=, hf_token: ...
    (
        "SECRET",
        re.compile(r"(?i)\b[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)\s*[=:]\s*\S+"),
    ),
    ("SECRET", re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/-]{8,}=*")),
    ("SECRET", re.compile(r"\b(?:ghp|gho|github_pat|glpat|xox[abpr]|sk|hf)[-_][A-Za-z0-9_-]{12,}\b")),
    ("SECRET", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("SECRET", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b")),  # JWT
    ("EMAIL", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("IP", re.compile(r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}\b")),
    (
        "IP",
        re.compile(r"(?i)\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}:?){1,6}\b"),
    ),
]


@dataclass
class Masker:
    originals: dict[str, str] = field(default_factory=dict)  # placeholder -> original
    _by_value: dict[str, str] = field(default_factory=dict)

    def _placeholder(self, kind: str, value: str) -> str:
        if value not in self._by_value:
            n = sum(1 for p in self.originals if p.startswith(f"<{kind}_")) + 1
            ph = f"<{kind}_{n}>"
            self._by_value[value] = ph
            self.originals[ph] = value
        return self._by_value[value]

    def mask(self, text: str) -> str:
        for kind, rx in PATTERNS:
            text = rx.sub(lambda m, k=kind: self._placeholder(k, m[0]), text)  # type: ignore[misc]
        return text

    def unmask(self, text: str) -> str:
        for ph in sorted(self.originals, key=len, reverse=True):
            text = text.replace(ph, self.originals[ph])
        return text


REDACTED = "<redacted>"


def redact(text: str) -> str:
    """Secrets out, for good (not reversible): what every stored or shown diagnosis text passes through."""
    for rx in SECRETS:
        text = rx.sub(REDACTED, text)
    for kind, rx in PATTERNS:
        if kind == "SECRET":
            text = rx.sub(_keep_name, text)
    return text


def _keep_name(m: re.Match[str]) -> str:
    """`PASSWORD=hunter2` -> `PASSWORD=<redacted>`: the name says what was there, which helps the reader."""
    name = _SECRET_NAME.match(m[0])
    return (name[1] if name else "") + REDACTED


_SECRET_NAME = re.compile(
    r"(?i)([\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)\s*[=:]\s*|Bearer\s+)"
)
