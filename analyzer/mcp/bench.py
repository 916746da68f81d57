"""`hpcmind bench mcp`: what the tool list costs an assistant's context, read-only and with writes enabled.

The `tools/list` result is taken from the SDK's own client (in process) and counted with SmolLM2's BPE
tokenizer (a GPT-2-style byte-level BPE, the same family the assistants use; counts agree within ~15 %).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from hpcmind.settings import Settings

from .server import build_server
from .transports import stdio_service


async def _tools_json(settings: Settings) -> tuple[str, list[str]]:
    service = stdio_service(settings)
    try:
        async with Client(build_server(settings, lambda: service)) as client:
            res = await client.list_tools()
    finally:
        service.store.close()
    data = res.model_dump(mode="json", by_alias=True, exclude_none=True)
    return json.dumps(data, separators=(",", ":")), [t.name for t in res.tools]


def _tokenizer(settings: Settings) -> Any:
    from analyzer.rca import lm

    _, transformers = lm._import_ml()
    return transformers.AutoTokenizer.from_pretrained(str(lm.base_model_dir(settings.model.cache_dir)))


def run(settings: Settings, out: Path) -> dict[str, Any]:
    tok = _tokenizer(settings)
    rows = []
    for writes in (False, True):
        s = settings.model_copy(update={"mcp": settings.mcp.model_copy(update={"allow_writes": writes})})
        text, names = anyio.run(_tools_json, s)
        rows.append(
            {
                "write_tools_enabled": writes,
                "tools": len(names),
                "names": names,
                "bytes": len(text.encode()),
                "tokens": len(tok(text)["input_ids"]),
            }
        )
    result = {"tokenizer": "SmolLM2-135M-Instruct (byte-level BPE)", "tools_list": rows, "target_tokens": 2000}
    out.mkdir(parents=True, exist_ok=True)
    (out / "mcp.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "mcp.md").write_text(markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# MCP tool list cost",
        "",
        f"`tools/list` as the SDK's client receives it, counted with {result['tokenizer']}; "
        f"target under {result['target_tokens']} tokens (peers' lists cost ~16k).",
        "",
        "| write tools | tools | bytes | tokens |",
        "|---|---:|---:|---:|",
    ]
    for r in result["tools_list"]:
        lines.append(f"| {'on' if r['write_tools_enabled'] else 'off'} | {r['tools']} | {r['bytes']} | {r['tokens']} |")
    lines += ["", "Tools: " + ", ".join(f"`{n}`" for n in result["tools_list"][-1]["names"]), ""]
    return "\n".join(lines)
