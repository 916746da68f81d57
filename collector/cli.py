"""`hpcmind collect`: serve exporter-compatible /metrics from one source and ship its logs."""

from __future__ import annotations

import itertools
import shutil
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from prometheus_client.metrics_core import Metric

from hpcmind.errors import UsageError
from hpcmind.services.proc import stop_on_signals, wait_for_stop
from hpcmind.settings import Settings

from .guard import GuardedCollector
from .logship import FileFollower, HttpPublisher, KafkaPublisher, LogRecord, LogShipper, Publisher, record_id
from .server import MetricsServer
from .sources import Source


def make_publisher(bus: str, settings: Settings) -> Publisher | None:
    a = settings.analyzer
    if bus == "http":
        base = a.public_url or f"http://{a.host}:{a.port}"
        return HttpPublisher(f"{base}/api/v1/logs", a.api_token.get_secret_value())
    if bus == "kafka":
        return KafkaPublisher(f"{settings.kafka.host}:{settings.kafka.port}", settings.kafka.topic)
    return None


def parse_follow(specs: list[str]) -> list[FileFollower]:
    out = []
    for spec in specs:
        glob_, sep, source = spec.partition("=")
        if not sep or not glob_ or not source:
            raise UsageError(f"--follow {spec!r}: expected GLOB=SOURCE, e.g. '/var/log/kern.log=node/{{host}}/kernel'")
        out.append(FileFollower(glob_, source))
    return out


class Follower(Protocol):
    def poll(self) -> list[LogRecord]: ...


class Collector:
    """Wires one source, the guard, the log shipper and the HTTP endpoint together."""

    def __init__(self, sources: list[Source], shipper: LogShipper | None, followers: list[Follower]) -> None:
        self.sources = sources
        self.shipper = shipper
        self.followers = followers
        self.guard = GuardedCollector(sources)
        self._stop = threading.Event()

    def collect(self) -> Iterable[Metric]:
        yield from self.guard.collect()
        if self.shipper is not None:
            yield from self.shipper.collect()

    def follow_loop(self, interval: float = 1.0) -> None:
        while not self._stop.wait(interval):
            for f in self.followers:
                for rec in f.poll():
                    if self.shipper is not None:
                        self.shipper.submit(rec)

    def stop(self) -> None:
        self._stop.set()


def build_source(
    kind: str,
    settings: Settings,
    scenario: str | None,
    speed: float,
    seed: int | None,
    slurm_rest: str | None,
    shipper: LogShipper | None,
) -> Source:
    if kind == "simulator":
        from simulator.cli import resolve_scenario
        from simulator.scenario import load_scenario

        from .sources.simulator import SimulatorSource

        if not scenario:
            raise UsageError("--scenario: required with --source simulator")
        sc = load_scenario(resolve_scenario(scenario))
        run = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        seq = itertools.count()

        def on_log(t: float, source: str, line: str) -> None:
            if shipper is not None:
                ts = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                shipper.submit(LogRecord(record_id(run, next(seq)), ts, source, line))

        src = SimulatorSource(sc, speed=speed, seed=seed, on_log=on_log)
        src.start()
        return src
    if kind == "slurm":
        from .sources.slurm import CliClient, RestClient, SlurmSource

        client = RestClient(slurm_rest) if slurm_rest else CliClient()

        def on_event(source: str, line: str) -> None:
            if shipper is not None:
                ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                shipper.submit(LogRecord(record_id(source, line), ts, source, line))

        return SlurmSource(client, on_event=on_event)
    if kind == "proc":  # node_exporter's names from /proc, for nodes that run no node_exporter
        from .sources.proc import ProcSource

        return ProcSource()
    from .sources.nvml import NvmlSource, NvmlUnavailable

    try:
        return NvmlSource(Path(settings.collector.job_mapping_dir) if settings.collector.job_mapping_dir else None)
    except NvmlUnavailable as exc:
        raise UsageError(f"--source nvml: {exc}") from None


def run_collect(
    kinds: list[str],
    settings: Settings,
    *,
    scenario: str | None,
    port: int | None,
    speed: float,
    seed: int | None,
    bus: str | None,
    follow: list[str],
    slurm_rest: str | None,
    journal: tuple[bool, list[str], list[str]] = (False, [], []),
) -> int:
    if speed <= 0:
        raise UsageError("--speed: must be > 0")
    if len(set(kinds)) != len(kinds):
        raise UsageError("--source: each source at most once")
    followers: list[Follower] = list(parse_follow(follow))
    kernel, units, files = journal
    journal_f = None
    if kernel or units or files:
        from .journal import JournalFollower, journal_command

        if not shutil.which("journalctl"):
            raise UsageError("--journal: journalctl not found (install systemd, or follow a log file with --follow)")
        for f in files:
            if not Path(f).exists():
                raise UsageError(f"--journal-file {f}: no such file or directory")
        journal_f = JournalFollower(journal_command(units, kernel or not units, files))
        followers.append(journal_f)
    pub = make_publisher(bus or settings.analyzer.log_bus, settings)
    shipper = LogShipper(pub) if pub is not None else None
    rest = slurm_rest or settings.collector.slurm_rest_url or None
    sources = [build_source(k, settings, scenario, speed, seed, rest, shipper) for k in kinds]
    col = Collector(sources, shipper, followers)
    kind = ",".join(kinds)
    try:
        server = MetricsServer(col.collect, settings.collector.host, port or settings.collector.port)
    except OSError as exc:
        raise UsageError(f"--port {port or settings.collector.port}: {exc.strerror}") from None
    server.start()
    if shipper is not None:
        shipper.start()
    threading.Thread(target=col.follow_loop, daemon=True).start()
    print(
        f"hpcmind collect: source={kind} serving http://{settings.collector.host}:{server.port}/metrics "
        f"log-bus={pub.bus if pub else 'none'}",
        flush=True,
    )
    wait_for_stop(stop_on_signals())
    col.stop()
    if journal_f is not None:
        journal_f.stop()
    for src in sources:
        stop = getattr(src, "stop", None)
        if callable(stop):
            stop()
    server.stop()
    if shipper is not None:
        # a live bus takes what is buffered within a second; an absent one must not hold the stop (the shipper
        # says how many lines it could not deliver)
        shipper.drain(timeout=1.5)
        shipper.stop()
    print("hpcmind collect: stopped", file=sys.stderr)
    return 0
