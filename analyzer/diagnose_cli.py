"""`hpcmind diagnose`: the CLI form of the diagnose contract."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import BinaryIO, TextIO

from hpcmind.contract import BundleError, Diagnosis, EvidenceBundle, parse_bundle_text
from hpcmind.errors import UsageError

from .rca import DiagnosisEngine
from .rca.report import where

MAX_BUNDLE_BYTES = 64 * 1024 * 1024  # a bundle is evidence windows and log lines, not a log archive


def _open(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise UsageError(f"FILE {path}: {exc.strerror}") from None


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{what}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None


def parse(raw: bytes, what: str = "bundle") -> EvidenceBundle:
    """Bytes to a bundle, every failure a BundleError naming the problem (never a traceback)."""
    if len(raw) > MAX_BUNDLE_BYTES:
        raise BundleError(f"{what}: {len(raw):,} bytes is over the {MAX_BUNDLE_BYTES:,}-byte limit")
    try:
        return parse_bundle_text(_text(raw, what))
    except RecursionError:
        raise BundleError(f"{what}: JSON nested too deeply") from None


def read_single(path: str) -> EvidenceBundle:
    """Read and check the bundle before any model loads: a malformed file fails in milliseconds."""
    with _open(path) as fh:
        raw = fh.read(MAX_BUNDLE_BYTES + 1)
    try:
        return parse(raw)
    except BundleError as exc:
        raise UsageError(str(exc)) from None


def human(d: Diagnosis) -> str:
    lines = [f"root cause : {d.root_cause} (confidence {d.confidence:.2f})"]
    loc = where(d.culprit)
    if loc:
        lines.append(f"where      : {loc}")
    lines.append(f"summary    : {d.summary}")
    lines += ["what to do :"] + [f"  {i}. {s}" for i, s in enumerate(d.remediation, 1)]
    if d.evidence:
        lines += ["evidence   :"] + [f"  - {e[:200]}" for e in d.evidence[:5]]
    if d.missing_evidence:
        lines.append(f"missing    : {', '.join(d.missing_evidence)}")
    lines.append(f"engine     : {d.model}, {d.latency_ms:.1f} ms")
    return "\n".join(lines)


def run_single(engine: DiagnosisEngine, bundle: EvidenceBundle, as_json: bool, out: TextIO) -> int:
    d = engine.diagnose(bundle)
    out.write((json.dumps(d.to_json_dict()) if as_json else human(d)) + "\n")
    return 0


def _lines(fh: BinaryIO) -> Iterator[bytes | None]:
    """Lines of at most MAX_BUNDLE_BYTES; None in place of a longer one (skipped to its end, never held whole)."""
    while raw := fh.readline(MAX_BUNDLE_BYTES + 1):
        if len(raw) <= MAX_BUNDLE_BYTES:
            yield raw
            continue
        while raw and not raw.endswith(b"\n"):
            raw = fh.readline(MAX_BUNDLE_BYTES)
        yield None


def run_batch(engine: DiagnosisEngine, path: str, out: TextIO) -> int:
    bad = 0
    with _open(path) as fh:
        for n, raw in enumerate(_lines(fh), 1):
            if raw is None:
                bad += 1
                out.write(json.dumps({"line": n, "error": f"line {n}: over the {MAX_BUNDLE_BYTES:,}-byte limit"}))
                out.write("\n")
                continue
            if not raw.strip():
                continue
            try:
                result = engine.diagnose(parse(raw, f"line {n}")).to_json_dict()
            except BundleError as exc:
                bad += 1
                result = {"line": n, "error": str(exc)}
            out.write(json.dumps(result) + "\n")
            out.flush()
    return 2 if bad else 0
