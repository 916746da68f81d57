"""One way to turn a pydantic ValidationError into a one-line message naming the field path."""

from __future__ import annotations

from pydantic import ValidationError


def field_path(loc: tuple[int | str, ...]) -> str:
    """('logs', 0, 'line') -> 'logs[0].line'; validator wrappers ('function-after', ...) are skipped."""
    out = ""
    for p in loc:
        if isinstance(p, str) and p.startswith("function-"):
            continue
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def first_error(exc: ValidationError, default_path: str) -> str:
    err = exc.errors()[0]
    return f"{field_path(tuple(err['loc'])) or default_path}: {err['msg']}"
