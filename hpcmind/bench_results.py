"""What every `hpcmind bench ...` shares: a percentile and writing `<name>.json` + `<name>.md` under bench/results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile of the samples (0 for none)."""
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else 0.0


def write_results(out_dir: Path, name: str, result: dict[str, Any], markdown: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out_dir / f"{name}.md").write_text(markdown, encoding="utf-8")
