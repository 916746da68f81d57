"""Alert rules and routing: the real promtool and amtool accept them, and they cover every root cause."""

from __future__ import annotations

import subprocess

import yaml

from hpcmind.taxonomy import root_cause_ids
from tests.conftest import ROOT

PROM = ROOT / "prometheus"
REQUIRED_ANNOTATIONS = {"summary", "description", "runbook_url", "hpcmind_causes"}


def alerts() -> list[dict[str, object]]:
    doc = yaml.safe_load((PROM / "rules" / "hpcmind-alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=PROM)


def test_promtool_check_config_and_rules() -> None:
    res = run("promtool", "check", "config", "prometheus.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    rules = sorted(str(p) for p in (PROM / "rules").glob("*.yml"))
    res = run("promtool", "check", "rules", *rules)
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_rule_tests_pass() -> None:
    res = run("promtool", "test", "rules", *sorted(str(p) for p in (PROM / "tests").glob("*.yml")))
    assert res.returncode == 0, res.stdout + res.stderr


def test_amtool_check_config() -> None:
    res = run("amtool", "check-config", "alertmanager.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_amtool_checks_the_compose_configs_one_and_two_replicas() -> None:
    for name in ("alertmanager.yml", "alertmanager-replicas.yml"):
        res = run("amtool", "check-config", str(ROOT / "deploy" / "compose" / name))
        assert res.returncode == 0, name + ": " + res.stdout + res.stderr


def test_every_alert_fires_and_stays_quiet_in_a_test() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for f in (PROM / "tests").glob("*.yml"):
        for t in yaml.safe_load(f.read_text())["tests"]:
            for a in t.get("alert_rule_test", []):
                (fires if a["exp_alerts"] else quiet).add(a["alertname"])
    names = {str(a["alert"]) for a in alerts()}
    assert names - fires == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"


def test_alerts_carry_what_the_analyzer_needs() -> None:
    causes: set[str] = set()
    known = set(root_cause_ids())
    for a in alerts():
        ann = a["annotations"]
        assert isinstance(ann, dict) and set(ann) >= REQUIRED_ANNOTATIONS, a["alert"]
        listed = set(str(ann["hpcmind_causes"]).split(","))
        assert listed <= known, (a["alert"], listed - known)
        causes |= listed
        assert a["labels"]["severity"] in ("critical", "warning", "info")  # type: ignore[index]
    assert causes == known, f"no alert names {known - causes}"


def test_analyzer_route_sees_everything() -> None:
    am = yaml.safe_load((PROM / "alertmanager.yml").read_text())
    assert "inhibit_rules" not in am  # inhibition is global: it would hide evidence from the analyzer
    first = am["route"]["routes"][0]
    assert first["receiver"] == "hpcmind-analyzer" and first.get("continue") is True and "matchers" not in first
    hook = next(r for r in am["receivers"] if r["name"] == "hpcmind-analyzer")["webhook_configs"][0]
    assert hook["send_resolved"] is True and hook["url"].endswith("/api/v1/alertmanager")
    assert hook["http_config"]["authorization"]["type"] == "Bearer"
    assert "credentials" not in hook["http_config"]["authorization"]  # no secret in the file


def test_rules_only_use_catalogue_or_recording_names() -> None:
    import re

    from hpcmind.metric_catalog import catalog

    names = set(catalog()) | {"up"}
    for a in alerts():
        for tok in re.findall(
            r"\b([A-Za-z_][A-Za-z0-9_:]*)\b(?=\s*(?:\{|\[|offset|>|<|!|=|\)| and| or| unless|$))", str(a["expr"])
        ):
            if tok.startswith(("DCGM_", "node_", "slurm_", "vllm:", "astro_", "hpcmind_")):
                base = re.sub(r"_(bucket|sum|count)$", "", tok)
                assert tok in names or base in names or tok in ("vllm:gpu_cache_usage_perc",), (a["alert"], tok)
