"""Vary a rendered line's wording within groups of interchangeable phrases (catalog/wordings.yaml)."""

from __future__ import annotations

import random
import re
from functools import cache

import yaml

from .catalog import CATALOG


@cache
def groups() -> tuple[tuple[str, ...], ...]:
    doc = yaml.safe_load((CATALOG / "wordings.yaml").read_text(encoding="utf-8"))
    out = tuple(tuple(str(p) for p in g) for g in doc["groups"])
    for g in out:
        if len(g) < 2 or len(set(p.lower() for p in g)) != len(g):
            raise ValueError(f"wordings.yaml: a group needs two or more distinct phrases: {list(g)}")
    return out


@cache
def _pattern() -> tuple[re.Pattern[str], dict[str, tuple[str, ...]]]:
    alts = {p.lower(): g for g in groups() for p in g}
    # longest first, whole words only: "timed out" before "time out", "error" not inside "errors_total"
    words = sorted(alts, key=len, reverse=True)
    rx = re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in words) + r")(?![\w-])", re.IGNORECASE)
    return rx, alts


def reword(rng: random.Random, text: str, share: float = 0.5) -> str:
    """Each phrase of a group found in `text` is swapped, with probability `share`, for another of its group."""
    rx, alts = _pattern()

    def swap(m: re.Match[str]) -> str:
        if rng.random() >= share:
            return m[0]
        choice = rng.choice([p for p in alts[m[0].lower()] if p.lower() != m[0].lower()])
        return choice.upper() if m[0].isupper() and len(m[0]) > 3 else choice

    return rx.sub(swap, text)
