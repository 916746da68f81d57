"""compose.yaml without a Docker engine: the compose JSON schema, plus references the schema does not check."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

COMPOSE = ROOT / "compose.yaml"


def doc() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def test_compose_schema() -> None:
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    res = subprocess.run([exe, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_references_exist() -> None:
    d = doc()
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


def test_ports_unique_images_pinned_no_secrets() -> None:
    d = doc()
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
