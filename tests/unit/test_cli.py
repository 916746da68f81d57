from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hpcmind.cli import SUBCOMMANDS
from tests.conftest import ROOT, run_cli


def test_help_lists_every_subcommand() -> None:
    res = run_cli("--help")
    assert res.returncode == 0
    for name in SUBCOMMANDS:
        assert name in res.stdout
    assert set(SUBCOMMANDS) == {
        "simulate",
        "collect",
        "serve",
        "mcp",
        "diagnose",
        "train",
        "bench",
        "demo",
        "workloads",
        "services",
        "config",
    }


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["train"], "required: WHAT"),
        (["train", "dataset", "--runs", "2"], "--runs: at least 5"),
        (["workloads", "run", "astrocode", "--fault", "nan"], "--fault nan: astrocode knows none, overload"),
        (["workloads", "run", "transitnet", "--fault", "meteor"], "--fault meteor: transitnet knows none, host-oom"),
    ],
)
def test_train_and_workloads_reject_bad_usage_in_one_line(args: list[str], says: str) -> None:
    res = run_cli(*args)
    assert res.returncode == 2
    assert says in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_bad_usage_is_one_line_exit_2() -> None:
    res = run_cli("services", "sideways")
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "action" in res.stderr


def test_unknown_service_is_named() -> None:
    res = run_cli("services", "status", "mysql")
    assert res.returncode == 2
    assert "'mysql'" in res.stderr


def test_config_show_masks_secrets() -> None:
    res = run_cli(
        "config", "show", env={"HPCMIND_ANALYZER__API_TOKEN": "s3cret-token", "HPCMIND_ANALYZER__PORT": "9123"}
    )
    assert res.returncode == 0, res.stderr
    cfg = json.loads(res.stdout)
    assert cfg["analyzer"]["port"] == 9123
    assert cfg["analyzer"]["api_token"] == "**********"
    assert "s3cret-token" not in res.stdout


def test_invalid_value_names_the_variable() -> None:
    res = run_cli("config", "show", env={"HPCMIND_ANALYZER__PORT": "abc"})
    assert res.returncode == 2
    assert "HPCMIND_ANALYZER__PORT" in res.stderr
    assert res.stdout == ""


def test_invalid_choice_names_the_variable() -> None:
    res = run_cli("config", "show", env={"HPCMIND_ANALYZER__LOG_BUS": "pigeon"})
    assert res.returncode == 2
    assert "HPCMIND_ANALYZER__LOG_BUS" in res.stderr


def test_dotenv_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HPCMIND_KAFKA__TOPIC=from-dotenv\n")
    res = run_cli("config", "show", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["kafka"]["topic"] == "from-dotenv"


@pytest.mark.parametrize(
    ("args", "says"),
    [(["--rate", "0"], "--rate and --duration must be positive"), (["--drain", "-1"], "--drain must be >= 0")],
)
def test_loadgen_rejects_bad_numbers_in_one_line(args: list[str], says: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "astro_workloads.astrocode.loadgen", *args], capture_output=True, text=True, cwd=ROOT
    )
    assert res.returncode == 2 and says in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_demo_names_a_taken_port_in_one_line_before_starting_anything() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = run_cli("demo", "--minutes", "0.1", env={"HPCMIND_ANALYZER__PORT": str(port)})
    assert res.returncode == 2
    assert f"127.0.0.1:{port} is in use" in res.stderr and "HPCMIND_ANALYZER__PORT" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_the_analyzer_queries_the_local_prometheus_wherever_its_port_moved() -> None:
    from hpcmind.settings import load_settings

    assert load_settings(prometheus={"port": 19555}).analyzer.prometheus_url == "http://127.0.0.1:19555"
    given = load_settings(prometheus={"port": 19555}, analyzer={"prometheus_url": "http://prom:9090"})
    assert given.analyzer.prometheus_url == "http://prom:9090"


def test_services_nobody_started_are_stopped_not_unhealthy(tmp_path: Path) -> None:
    res = run_cli("services", "status", "prometheus", "postgres", env={"HPCMIND_SERVICES__RUN_DIR": str(tmp_path)})
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert [ln.split()[:2] for ln in lines] == [["prometheus", "stopped"], ["postgres", "stopped"]]
    assert "UNHEALTHY" not in res.stdout
