"""Numbers as people read them in evidence: bytes in KiB..TiB, temperatures in °C."""

from __future__ import annotations

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(v: float) -> str:
    """1.44e12 -> '1.31 TiB'; 2.2e9 -> '2.05 GiB'; 512 -> '512 B'."""
    x, unit = float(v), 0
    while abs(x) >= 1024 and unit < len(_BYTE_UNITS) - 1:
        x, unit = x / 1024, unit + 1
    return f"{x:.0f} B" if unit == 0 else f"{x:.3g} {_BYTE_UNITS[unit]}"


def celsius(v: float) -> str:
    return f"{v:g} °C"
