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


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\xff\xfe\x00binary", "not UTF-8 text (byte 0xff at offset 0)"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"logs": [', "invalid JSON"),
        (b'{"logs": [{"source": "x"}]}', "line"),
    ],
)
def test_bad_bundles_are_one_line_exit_2_before_any_model_loads(tmp_path: Path, content: bytes, says: str) -> None:
    f = tmp_path / "b.json"
    f.write_bytes(content)
    res = run_cli("diagnose", str(f), "--json")
    assert res.returncode == 2 and res.stdout == "", res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and says in res.stderr, res.stderr


def test_batch_reports_bad_lines_in_place_and_goes_on(tmp_path: Path) -> None:
    good = b'{"logs": [{"line": "NVRM: Xid (PCI:0000:3b:00): 79, pid=1, GPU has fallen off the bus."}]}'
    f = tmp_path / "b.jsonl"
    f.write_bytes(good + b"\n\xff\xfe not utf-8\n" + b"[" * 50_000 + b"\n" + good + b"\n")
    res = run_cli("diagnose", "--batch", str(f))
    out = [json.loads(x) for x in res.stdout.splitlines()]
    assert res.returncode == 2 and len(out) == 4
    assert out[0]["root_cause"] == out[3]["root_cause"] == "gpu_hardware_fault"
    assert out[1]["line"] == 2 and "UTF-8" in out[1]["error"] and out[2]["line"] == 3 and "deeply" in out[2]["error"]


def test_bundle_size_is_bounded() -> None:
    from analyzer import diagnose_cli
    from hpcmind.contract import BundleError

    with pytest.raises(BundleError, match="over the"):
        diagnose_cli.parse(b" " * (diagnose_cli.MAX_BUNDLE_BYTES + 1))


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"HPCMIND_ANALYZER": "not json"}, "HPCMIND_ANALYZER: not valid JSON"),
        ({"HPCMIND_ANALYZER__DATABASE_URL": "sqlite:////nonexistent/dir/a.db"}, "HPCMIND_ANALYZER__DATABASE_URL"),
        ({"HPCMIND_ANALYZER__HOST": "0.0.0.0"}, "HPCMIND_ANALYZER__API_TOKEN"),
    ],
)
def test_serve_and_config_failures_are_one_line_exit_2(env: dict[str, str], says: str) -> None:
    from tests.conftest import free_port

    res = run_cli("serve", env={"HPCMIND_ANALYZER__PORT": str(free_port()), **env}, timeout=60)
    assert res.returncode == 2 and says in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_out_onto_an_existing_file_is_one_line_exit_2(tmp_path: Path) -> None:
    f = tmp_path / "taken"
    f.write_text("x")
    res = run_cli("train", "dataset", "--runs", "5", "--out", str(f), timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr and str(f) in res.stderr, res.stderr
