"""compose.yaml without a Docker engine: the compose JSON schema, plus references the schema does not check."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = ROOT / "compose.yaml"
REPLICAS = ROOT / "compose.replicas.yaml"


def _merge_service(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """How `docker compose -f a -f b` merges one service: mappings key by key, ports concatenated, volumes by
    their mount path in the container."""
    out = dict(base)
    for key, value in over.items():
        if key == "volumes":
            by_target = {v.split(":")[1]: v for v in base.get("volumes", [])}
            by_target |= {v.split(":")[1]: v for v in value}
            out[key] = list(by_target.values())
        elif key == "ports":
            out[key] = base.get("ports", []) + value
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = {**base[key], **value}
        else:
            out[key] = value
    return out


def doc(*overrides: Path) -> dict[str, Any]:
    d: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    for f in overrides:
        o = yaml.safe_load(f.read_text())
        for name, svc in o.get("services", {}).items():
            d["services"][name] = _merge_service(d["services"].get(name, {}), svc)
        d["volumes"] = {**d.get("volumes", {}), **o.get("volumes", {})}
    return d


VARIANTS = [(), (REPLICAS,)]


@pytest.mark.parametrize("f", [COMPOSE, REPLICAS], ids=["compose", "replicas"])
def test_compose_schema(f: Path) -> None:
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    res = subprocess.run([exe, "--builtin-schema", "vendor.compose-spec", str(f)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("overrides", VARIANTS, ids=["compose", "replicas"])
def test_references_exist(overrides: tuple[Path, ...]) -> None:
    d = doc(*overrides)
    services = d["services"]
    volumes = set(d.get("volumes", {}))
    secrets = set(d.get("secrets", {}))
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on undefined {dep}"
        build = svc.get("build")
        if build:
            ctx = ROOT / build["context"]
            assert ctx.is_dir() and (ctx / build["dockerfile"]).is_file(), name
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                assert (ROOT / src).exists(), f"{name}: mounted path {src} missing"
            else:
                assert src in volumes, f"{name}: named volume {src} undefined"
        for s in svc.get("secrets", []):
            assert s in secrets, f"{name}: secret {s} undefined"
    for name, svc in services.items():
        for dep, cond in svc.get("depends_on", {}).items():
            if cond.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} healthy, but {dep} has no healthcheck"


@pytest.mark.parametrize("overrides", VARIANTS, ids=["compose", "replicas"])
def test_ports_unique_images_pinned_no_secrets(overrides: tuple[Path, ...]) -> None:
    d = doc(*overrides)
    ports = [p.split(":")[0] for svc in d["services"].values() for p in svc.get("ports", [])]
    assert len(ports) == len(set(ports)), ports
    for name, svc in d["services"].items():
        image = svc.get("image", "")
        assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), f"{name}: unpinned image {image}"
    for name, svc in d["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key) or re.search(r"://[^/@]+:[^/@]+@", str(value)):
                assert "${" in str(value), f"{name}: {key} holds a literal secret"


def test_core_services_and_gpu_profile() -> None:
    s = doc()["services"]
    assert {"prometheus", "alertmanager", "grafana", "kafka", "collector", "analyzer", "pushgateway"} <= set(s)
    assert {n for n, v in s.items() if "gpu" in v.get("profiles", [])} == {
        "astrocode",
        "dcgm-exporter",
        "collector-nvml",
    }
    assert all(
        "healthcheck" in s[n]
        for n in ("prometheus", "alertmanager", "grafana", "kafka", "collector", "analyzer", "pushgateway")
    )


def test_images_we_build_run_as_non_root() -> None:
    df = (ROOT / "deploy" / "Dockerfile").read_text()
    assert df.count("FROM ") >= 2, "multi-stage"
    assert re.search(r"^USER (?!root)\w+", df, re.M)


def test_the_replicas_variant_puts_both_analyzers_on_one_postgres_and_in_alertmanager_s_receiver() -> None:
    s = doc(REPLICAS)["services"]
    urls = {s[n]["environment"]["HPCMIND_ANALYZER__DATABASE_URL"] for n in ("analyzer", "analyzer-2")}
    assert len(urls) == 1 and next(iter(urls)).startswith("postgresql+psycopg://")
    ids = {s[n]["environment"]["HPCMIND_ANALYZER__REPLICA_ID"] for n in ("analyzer", "analyzer-2")}
    assert len(ids) == 2
    # analyzer-2 is the same analyzer: every setting of the first one, apart from its own address and name
    own = {"HPCMIND_ANALYZER__PUBLIC_URL", "HPCMIND_ANALYZER__REPLICA_ID", "HPCMIND_MCP__ALLOWED_HOSTS"}
    first, second = s["analyzer"]["environment"], s["analyzer-2"]["environment"]
    assert {k: v for k, v in first.items() if k not in own} == {k: v for k, v in second.items() if k not in own}
    mounted = [v for v in s["alertmanager"]["volumes"] if v.endswith("/etc/alertmanager/alertmanager.yml:ro")]
    assert mounted == ["./deploy/compose/alertmanager-replicas.yml:/etc/alertmanager/alertmanager.yml:ro"]
    am = yaml.safe_load((ROOT / "deploy" / "compose" / "alertmanager-replicas.yml").read_text())
    hooks = [w["url"] for r in am["receivers"] for w in r.get("webhook_configs", [])]
    assert hooks == ["http://analyzer:8080/api/v1/alertmanager", "http://analyzer-2:8080/api/v1/alertmanager"]
