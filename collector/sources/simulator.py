"""The simulator in real time: a ticker thread advances the cluster; each scrape renders the latest state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from prometheus_client.metrics_core import Metric

from simulator.engine import Simulation
from simulator.samples import Block, SampleBuilder
from simulator.scenario import Scenario

from ..families import FamilyBuilder, LabelStrings

LogSink = Callable[[float, str, str], None]


class SimulatorSource:
    name = "simulator"

    def __init__(
        self, scenario: Scenario, *, speed: float = 1.0, seed: int | None = None, on_log: LogSink | None = None
    ) -> None:
        # real time: the simulated clock starts now, so sample times line up with Prometheus' scrapes
        self.sim = Simulation(scenario.model_copy(update={"start": datetime.now(UTC)}), seed)
        self.samples = SampleBuilder(self.sim)
        self.labels = LabelStrings()
        self.speed = speed
        self.on_log = on_log
        self._lock = threading.Lock()
        self._blocks: list[Block] = self.samples.blocks()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def advance(self) -> None:
        """One tick: step the simulation, snapshot its samples, hand new log lines to the sink."""
        self.sim.step()
        blocks = self.samples.blocks()
        lines = self.sim.drain_logs(self.sim.t)
        with self._lock:
            self._blocks = blocks
        if self.on_log is not None:
            for t, source, line in lines:
                self.on_log(t, source, line)

    def start(self) -> None:
        def loop() -> None:
            period = self.sim.tick / self.speed
            nxt = time.monotonic() + period
            while not self._stop.wait(max(0.0, nxt - time.monotonic())):
                self.advance()
                nxt += period

        self._thread = threading.Thread(target=loop, name="simulator-ticker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            blocks = self._blocks
            rendered = self.labels.sync(self.samples.labels.strings)
        fb = FamilyBuilder()
        for b in blocks:
            fb.add(b.name, [rendered[i] for i in b.label_ids.tolist()], b.values)
        return fb.families()
