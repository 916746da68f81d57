"""Each local service started by `hpcmind services up` answers for real."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import psycopg

from hpcmind.services.catalog import SERVICES, Postgres, Slurm, Slurmrestd
from hpcmind.settings import Settings
from tests.conftest import run_cli


def test_status_all_healthy() -> None:
    res = run_cli("services", "status")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("healthy") == len(SERVICES), res.stdout


def test_up_is_idempotent() -> None:
    t0 = time.monotonic()
    res = run_cli("services", "up")
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - t0 < 30  # nothing is reinstalled or restarted


def test_prometheus_scrapes_itself(settings: Settings) -> None:
    url = f"http://127.0.0.1:{settings.prometheus.port}/api/v1/query"
    deadline = time.monotonic() + 30
    result: list[Any] = []
    while time.monotonic() < deadline and not result:
        result = httpx.get(url, params={"query": 'up{job="prometheus"}'}).json()["data"]["result"]
        time.sleep(0.5)
    assert result and result[0]["value"][1] == "1"


def test_alertmanager_delivers_to_webhook_with_bearer_token(settings: Settings) -> None:
    got: list[tuple[str, dict[str, Any]]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            got.append((self.headers.get("Authorization", ""), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = HTTPServer(("127.0.0.1", settings.analyzer.port), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        # A fresh label set each run: Alertmanager would not repeat an alert it already delivered.
        labels = {"alertname": "ServicesSmoke", "Hostname": "node01", "run": str(time.time_ns())}
        alert = [{"labels": labels, "annotations": {"summary": "smoke"}}]
        r = httpx.post(f"http://127.0.0.1:{settings.alertmanager.port}/api/v2/alerts", json=alert)
        assert r.status_code == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
            a["labels"].get("run") == labels["run"] for _, b in got for a in b["alerts"]
        ):
            time.sleep(0.1)
    finally:
        srv.shutdown()
        srv.server_close()
    # Alertmanager may also deliver what an earlier test left firing: look for ours
    mine = [(auth, body) for auth, body in got if any(a["labels"].get("run") == labels["run"] for a in body["alerts"])]
    assert mine, f"no webhook call with our alert among {len(got)}"
    auth, body = mine[0]
    assert auth == f"Bearer {settings.analyzer.api_token.get_secret_value()}"
    assert body["version"] == "4"


def _squeue(env: dict[str, str]) -> dict[int, dict[str, Any]]:
    out = subprocess.run(["squeue", "--json"], capture_output=True, text=True, env=env, check=True).stdout
    return {j["job_id"]: j for j in json.loads(out)["jobs"]}


def test_slurm_runs_a_gpu_job(settings: Settings) -> None:
    slurm = Slurm(settings)
    env = {**__import__("os").environ, **slurm.env()}
    outfile = slurm.dir / "jobs" / "gpu-%j.out"
    res = subprocess.run(
        ["sbatch", "--parsable", "--gpus=2", "-o", str(outfile), "--wrap", "echo $CUDA_VISIBLE_DEVICES"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    jid = int(res.stdout.strip().split(";")[0])
    deadline, state = time.monotonic() + 60, ""
    while time.monotonic() < deadline:
        state = _squeue(env).get(jid, {}).get("job_state", "")
        if state in ("COMPLETED", "FAILED"):
            break
        time.sleep(0.2)
    assert state == "COMPLETED"
    assert (slurm.dir / "jobs" / f"gpu-{jid}.out").read_text().strip() == "0,1"


def test_slurmrestd_lists_nodes(settings: Settings) -> None:
    sock = Slurmrestd(settings).socket_path
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock))) as c:
        nodes = c.get("http://localhost/slurm/v0.0.38/nodes").json()["nodes"]
    assert [n["name"] for n in nodes] == [settings.slurm.node_name]
    assert nodes[0]["gres"].startswith("gpu:fake:")


def test_kafka_round_trip(settings: Settings) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = f"smoke-{int(time.time() * 1000)}"
    bootstrap = f"127.0.0.1:{settings.kafka.port}"

    async def go() -> list[bytes]:
        prod = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await prod.start()
        try:
            for i in range(100):
                await prod.send_and_wait(topic, b"m%d" % i, partition=0)
        finally:
            await prod.stop()
        cons = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await cons.start()
        try:
            tp = TopicPartition(topic, 0)
            cons.assign([tp])
            await cons.seek_to_beginning(tp)
            got: list[bytes] = []
            while len(got) < 100:
                batch = await cons.getmany(timeout_ms=2000)
                if not batch:
                    break
                got += [m.value for msgs in batch.values() for m in msgs if m.value is not None]
            return got
        finally:
            await cons.stop()

    got = asyncio.run(go())
    assert got == [b"m%d" % i for i in range(100)]


def test_postgres_accepts_the_configured_user(settings: Settings) -> None:
    pg = settings.postgres
    Postgres(settings).check()
    with psycopg.connect(
        host="127.0.0.1", port=pg.port, user=pg.user, password=pg.password.get_secret_value(), dbname=pg.database
    ) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
