"""HPCMind's MCP server through the SDK's own client, over streamable HTTP (/mcp on a running analyzer) and stdio
(`hpcmind mcp`, a real subprocess), with the real Prometheus scraping a simulated node and an incident the
webhook created."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from collector.guard import GuardedCollector
from collector.server import MetricsServer
from collector.sources.simulator import SimulatorSource
from hpcmind.settings import Settings
from simulator.scenario import parse_scenario
from tests.conftest import ROOT, run_cli
from tests.e2e.conftest import Stack, analyzer_stack, training_scenario
from tests.unit.test_analyzer_app import alert, payload

NODE = "mcp001"
JOB = "88001"
READ_TOOLS = {"diagnose", "list_incidents", "get_incident", "node_health", "job_health", "query_metrics", "root_causes"}
BUNDLE = {
    "alert": {"labels": {"alertname": "GPUXidError", "Hostname": NODE, "gpu": "1", "err_code": "79"}},
    "logs": [
        {
            "source": f"node/{NODE}/kernel",
            "line": "NVRM: Xid (PCI:0000:41:00): 79, pid=2211, GPU has fallen off the bus.",
        },
        {"source": f"job/{JOB}", "line": "RuntimeError: CUDA error: unspecified launch failure"},
    ],
}


@dataclass
class McpStack:
    stack: Stack
    db: Path
    incident: int

    @property
    def url(self) -> str:
        return self.stack.base + "/mcp"


@pytest.fixture(scope="module")
def mcp_stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpStack]:
    db = tmp_path_factory.mktemp("mcp") / "mcp.db"
    with analyzer_stack(settings, db) as stack:
        src = SimulatorSource(
            parse_scenario(training_scenario("e2e-mcp", 5, "mcp", nodes=1, gpus=2, first_job=int(JOB))), name="sim-mcp"
        )
        metrics = MetricsServer(GuardedCollector([src]).collect, port=0)
        target = stack.targets / "e2e-mcp.json"
        try:
            metrics.start()
            target.write_text(json.dumps([{"targets": [f"127.0.0.1:{metrics.port}"], "labels": {"cluster": "e2e"}}]))
            src.start()
            xid = alert(
                "GPUXidError",
                {"Hostname": NODE, "gpu": "1", "err_code": "79", "err_msg": "GPU has fallen off the bus",
                 "hpc_job": JOB, "job_id": JOB, "severity": "critical"},
                "mcp1", summary=f"Xid 79 on GPU 1 of {NODE}", causes="gpu_hardware_fault",
            )  # fmt: skip
            r = httpx.post(stack.base + "/api/v1/alertmanager", json=payload(xid), headers=stack.headers)
            assert r.status_code == 200, r.text
            deadline = time.monotonic() + settings.services.ready_timeout_s
            incident = None
            while time.monotonic() < deadline:
                mine = [i for i in stack.incidents() if i["culprit"].get("node") == NODE and i["root_cause"]]
                # both GPUs' series scraped at least twice: query_metrics below asks for a window, not a point
                scraped = httpx.get(
                    stack.prometheus + "/api/v1/query",
                    params={"query": f'DCGM_FI_DEV_GPU_UTIL{{Hostname="{NODE}"}}[5m]'},
                ).json()["data"]["result"]
                if mine and len(scraped) == 2 and all(len(r["values"]) >= 2 for r in scraped):
                    incident = mine[0]["id"]
                    break
                time.sleep(1)
            assert incident is not None, "no diagnosed incident, or Prometheus never scraped the simulated node"
            yield McpStack(stack, db, int(incident))
        finally:
            target.unlink(missing_ok=True)
            src.stop()
            metrics.stop()


@asynccontextmanager
async def http_client(url: str, headers: dict[str, str], mode: str = "auto") -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=120) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as c,
    ):
        yield c


def stdio_params(m: McpStack, settings: Settings, **extra: str) -> StdioServerParameters:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HPCMIND_")}
    env = {
        **clean,
        "HPCMIND_ANALYZER__DATABASE_URL": f"sqlite:///{m.db}",
        "HPCMIND_ANALYZER__PROMETHEUS_URL": m.stack.prometheus,
        **extra,
    }
    return StdioServerParameters(command=sys.executable, args=["-m", "hpcmind", "mcp"], env=env, cwd=str(ROOT))


def cli_diagnosis(tmp: Path, bundle: dict[str, Any]) -> dict[str, Any]:
    f = tmp / "bundle.json"
    f.write_text(json.dumps(bundle))
    res = run_cli("diagnose", "--json", str(f), timeout=300)
    assert res.returncode == 0, res.stderr
    return comparable(json.loads(res.stdout))


def comparable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "latency_ms"}


async def exercise(c: Client, m: McpStack) -> dict[str, Any]:
    """Every read tool once; what each returned."""
    out: dict[str, Any] = {}
    tools = {t.name: t for t in (await c.list_tools()).tools}
    out["tools"] = tools
    for name in ("diagnose", "list_incidents", "get_incident", "node_health", "job_health", "query_metrics"):
        args: dict[str, Any] = {
            "diagnose": {"bundle": BUNDLE},
            "list_incidents": {"state": "open", "node": NODE},
            "get_incident": {"id": m.incident},
            "node_health": {"node": NODE, "hours": 1},
            "job_health": {"job": JOB, "hours": 1},
            "query_metrics": {"query": f'DCGM_FI_DEV_GPU_UTIL{{Hostname="{NODE}"}}', "start": "now-5m"},
        }[name]
        r = await c.call_tool(name, args)
        assert not r.is_error, (name, r.content)
        assert r.content and r.content[0].text, name  # readable as text too
        out[name] = r.structured_content
    r = await c.call_tool("root_causes", {})
    out["root_causes"] = r.structured_content
    return out


def check_answers(out: dict[str, Any], m: McpStack, tmp: Path) -> None:
    tools = out["tools"]
    assert set(tools) >= READ_TOOLS and "submit_feedback" not in tools  # writes are off by default
    for t in tools.values():
        assert t.annotations is not None and t.annotations.read_only_hint is True and t.output_schema, t.name
        assert t.annotations.destructive_hint is False
    assert comparable(out["diagnose"]) == cli_diagnosis(tmp, BUNDLE)
    assert out["diagnose"]["root_cause"] == "gpu_hardware_fault"
    assert m.incident in [i["id"] for i in out["list_incidents"]["items"]]
    inc = out["get_incident"]
    assert inc["id"] == m.incident and inc["root_cause"] == "gpu_hardware_fault" and inc["timeline"]
    assert inc["diagnosis"]["remediation"] and inc["culprit"]["node"] == NODE
    node = out["node_health"]
    assert {g["gpu"] for g in node["gpus"]} == {"0", "1"} and all("util_pct" in g for g in node["gpus"])
    assert m.incident in [i["id"] for i in node["open_incidents"]] and not node["healthy"]
    assert m.incident in [i["id"] for i in out["job_health"]["incidents"]]
    q = out["query_metrics"]
    assert q["result_type"] == "matrix" and q["series"] == 2 and len(q["result"][0]["values"]) > 1
    assert len(out["root_causes"]["root_causes"]) == 18


def test_streamable_http_serves_every_tool_against_real_prometheus(mcp_stack: McpStack, tmp_path: Path) -> None:
    async def main() -> tuple[dict[str, Any], Any, Any, Any]:
        async with http_client(mcp_stack.url, mcp_stack.stack.headers) as c:
            out = await exercise(c, mcp_stack)
            templates = await c.list_resource_templates()
            prompts = await c.list_prompts()
            res = await c.read_resource(f"incident://{mcp_stack.incident}")
            return out, templates, prompts, res

    out, templates, prompts, res = anyio.run(main)
    check_answers(out, mcp_stack, tmp_path)
    assert {t.uri_template for t in templates.resource_templates} == {"incident://{id}", "runbook://{root_cause}"}
    assert [p.name for p in prompts.prompts] == ["investigate_alert"]
    assert json.loads(res.contents[0].text)["id"] == mcp_stack.incident


def test_stdio_serves_the_same_answers(mcp_stack: McpStack, settings: Settings, tmp_path: Path) -> None:
    async def main() -> dict[str, Any]:
        async with Client(stdio_params(mcp_stack, settings), read_timeout_seconds=300) as c:
            return await exercise(c, mcp_stack)

    check_answers(anyio.run(main), mcp_stack, tmp_path)


def test_bad_input_is_a_tool_error_naming_the_argument(mcp_stack: McpStack) -> None:
    bad = [
        ("diagnose", {}, "bundle, log_text"),
        ("diagnose", {"bundle": {"nothing": 1}}, "bundle"),
        ("diagnose", {"log_text": "\n\n"}, "log_text"),
        ("list_incidents", {"limit": 0}, "limit"),
        ("list_incidents", {"root_cause": "gremlins"}, "root_cause"),
        ("list_incidents", {"since": "last tuesday"}, "since"),
        ("get_incident", {"id": 999999}, "id"),
        ("get_incident", {"id": "x"}, "id"),
        ("node_health", {"node": ""}, "node"),
        ("job_health", {"job": JOB, "hours": -1}, "hours"),
        ("query_metrics", {"query": "sum(rate(up[5m]"}, "query"),
        ("query_metrics", {"query": "up", "start": "now-30d"}, "start"),
        ("query_metrics", {"query": "up", "start": "now-1h", "step": "1s"}, "step"),
        ("query_metrics", {"query": "up", "step": "1m"}, "step"),
    ]

    async def main() -> list[tuple[str, bool, str]]:
        out = []
        async with http_client(mcp_stack.url, mcp_stack.stack.headers) as c:
            for name, args, _ in bad:
                r = await c.call_tool(name, args)
                out.append((name, r.is_error, r.content[0].text if r.content else ""))
            ok = await c.call_tool("root_causes", {})  # the session survived all of it
            out.append(("root_causes", ok.is_error, ""))
        return out

    got = anyio.run(main)
    for (name, args, arg), (_, is_error, text) in zip(bad, got, strict=False):
        assert is_error and arg in text, (name, args, text)
    assert got[-1] == ("root_causes", False, "")


def test_mcp_needs_the_token_and_a_known_host(mcp_stack: McpStack) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    h = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    url = mcp_stack.url
    assert httpx.post(url, json=init, headers=h).status_code == 401
    assert httpx.post(url, json=init, headers={**h, "Authorization": "Bearer wrong"}).status_code == 401
    auth = {**h, **mcp_stack.stack.headers}
    assert httpx.post(url, json=init, headers={**auth, "Host": "evil.example:8080"}).status_code == 421
    assert httpx.post(url, json=init, headers={**auth, "Origin": "http://evil.example"}).status_code == 403


def test_write_tools_exist_only_when_enabled(mcp_stack: McpStack, settings: Settings) -> None:
    async def main() -> tuple[Any, Any, Any]:
        params = stdio_params(mcp_stack, settings, HPCMIND_MCP__ALLOW_WRITES="true")
        async with Client(params, read_timeout_seconds=300) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            bad = await c.call_tool("submit_feedback", {"incident_id": mcp_stack.incident, "correct": False})
            ok = await c.call_tool("submit_feedback", {"incident_id": mcp_stack.incident, "correct": True})
            act = await c.call_tool("decide_action", {"action_id": 424242, "decision": "approve", "by": "assistant"})
            assert act.is_error and "no action 424242" in act.content[0].text
            return tools, bad, ok

    tools, bad, ok = anyio.run(main)
    fb = tools["submit_feedback"]
    assert fb.annotations is not None and fb.annotations.read_only_hint is False
    assert bad.is_error and "true_root_cause" in bad.content[0].text
    assert not ok.is_error
    detail = httpx.get(f"{mcp_stack.stack.base}/api/v1/incidents/{mcp_stack.incident}", headers=mcp_stack.stack.headers)
    assert [f["correct"] for f in detail.json()["feedback"]] == [True]


def test_both_protocol_eras_are_served(mcp_stack: McpStack) -> None:
    """The SDK's client probes first (the 2026-07-28 stateless revision); a client that only knows the
    initialize handshake gets the same tools."""

    async def main(mode: str) -> tuple[str, set[str]]:
        async with http_client(mcp_stack.url, mcp_stack.stack.headers, mode) as c:
            return c.protocol_version, {t.name for t in (await c.list_tools()).tools}

    modern, legacy = anyio.run(main, "auto"), anyio.run(main, "legacy")
    assert modern[0] == "2026-07-28" and legacy[0] != modern[0] and legacy[0].startswith("2025")
    assert modern[1] == legacy[1] and modern[1] >= READ_TOOLS
