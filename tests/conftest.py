from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 60) -> None:
    """SIGTERM, a generous wait, then SIGKILL: cleanup never leaves a child running into the next test."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Markers follow the folder: tests/unit -> unit, tests/integration -> integration, ...
    for item in items:
        part = Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if part in ("unit", "integration", "e2e", "browser", "model"):
            item.add_marker(getattr(pytest.mark, part))


def run_cli(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HPCMIND_")}
    return subprocess.run(
        [sys.executable, "-m", "hpcmind", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        cwd=cwd or ROOT,
        timeout=timeout,
    )
