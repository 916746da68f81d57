"""The OpenAI-compatible backend against a real local server: `transformers serve` on the merged model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from analyzer.rca.lm import labels
from analyzer.rca.openai_engine import OpenAIEngine
from hpcmind.contract import parse_bundle
from hpcmind.taxonomy import UNKNOWN
from tests.conftest import free_port, run_cli, stop_process

BUNDLE = {
    "alert": {"labels": {"alertname": "GPUXidError", "Hostname": "gpu-a01", "gpu": "3"}},
    "logs": [
        {
            "source": "node/gpu-a01/kernel",
            "line": "NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, GPU has fallen off the bus.",
        },
        {
            "source": "job/42/rank0",
            "line": "ncclCommInitRank failed: peer 10.3.30.62 unreachable, mail ops@example.org",
        },
        {"source": "job/42/rank0", "line": "export WANDB_API_KEY=abcdef0123456789abcdef"},
    ],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    merged = tmp_path_factory.mktemp("merged")
    res = run_cli("train", "export", "--out", str(merged), timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    port = free_port()
    exe = Path(sys.executable).parent / "transformers"
    proc = subprocess.Popen(
        [str(exe), "serve", str(merged), "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "transformers serve exited"
            time.sleep(0.5)
        else:
            pytest.fail("transformers serve did not come up in 120 s")
        yield f"{base}/v1", str(merged)
    finally:
        stop_process(proc)


def test_remote_diagnosis_is_valid_and_masked(server: tuple[str, str]) -> None:
    url, model = server
    engine = OpenAIEngine(url, model, mask=True, timeout=120)
    d = engine.diagnose(parse_bundle(BUNDLE))
    engine.close()
    assert d.root_cause in labels()
    assert d.model.startswith("openai-compatible")  # the endpoint answered: no fallback
    sent = json.dumps(engine.last_request)
    for secret in ("10.3.30.62", "ops@example.org", "abcdef0123456789abcdef"):
        assert secret not in sent
    assert "Xid (PCI:0000:3b:00): 79" in sent
    # culprit and evidence come from the local, unmasked bundle
    assert d.culprit.node == "gpu-a01" and d.culprit.gpu == "3"


def test_merged_model_served_remotely_agrees_with_in_process_model(server: tuple[str, str]) -> None:
    from analyzer.rca.model_engine import ModelEngine
    from hpcmind.settings import Settings

    url, model = server
    s = Settings()
    local = ModelEngine(s.model.artifacts, s.model.cache_dir, "finetuned").diagnose(parse_bundle(BUNDLE))
    client = OpenAIEngine(url, model, timeout=120)
    remote = client.diagnose(parse_bundle(BUNDLE))
    client.close()
    assert remote.root_cause == local.root_cause != UNKNOWN


def test_unreachable_endpoint_falls_back_to_signatures_and_says_so() -> None:
    engine = OpenAIEngine(f"http://127.0.0.1:{free_port()}/v1", "m", timeout=2)
    d = engine.diagnose(parse_bundle(BUNDLE))
    engine.close()
    assert d.root_cause == "gpu_hardware_fault" and "endpoint failed" in d.model
