"""`diagnose` over MCP (stdio, the SDK's client) answers exactly what `hpcmind diagnose --batch` answers, on every
bundle of both real dev sets (evaluation data: read here, never trained on)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from tests.conftest import ROOT, run_cli

SETS = (ROOT / "bench/data/real-dev.jsonl", ROOT / "bench/data/real-dev-2.jsonl")


def _same(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "latency_ms"}


def test_mcp_diagnose_equals_the_cli_on_both_dev_sets(tmp_path: Path) -> None:
    bundles = [json.loads(x)["bundle"] for f in SETS for x in f.read_text().splitlines() if x.strip()]
    batch = tmp_path / "bundles.jsonl"
    batch.write_text("".join(json.dumps(b) + "\n" for b in bundles))
    res = run_cli("diagnose", "--batch", str(batch), timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    cli = [_same(json.loads(x)) for x in res.stdout.splitlines()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCMIND_")}
    env["HPCMIND_ANALYZER__DATABASE_URL"] = f"sqlite:///{tmp_path / 'mcp.db'}"
    params = StdioServerParameters(command=sys.executable, args=["-m", "hpcmind", "mcp"], env=env, cwd=str(ROOT))

    async def main() -> list[dict[str, Any]]:
        out = []
        async with Client(params, read_timeout_seconds=600) as c:
            for b in bundles:
                r = await c.call_tool("diagnose", {"bundle": b})
                assert not r.is_error, r.content
                out.append(_same(r.structured_content or {}))
        return out

    over_mcp = anyio.run(main)
    assert len(over_mcp) == len(cli) == 47
    for i, (a, b) in enumerate(zip(over_mcp, cli, strict=True)):
        assert a == b, (i, a["root_cause"], b["root_cause"])
