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

from ..exposition import Prerendered, render
from ..families import FamilyBuilder, LabelStrings

LogSink = Callable[[float, str, str], None]


class SimulatorSource:
    """Renders its exposition once per tick (the state changes only then), like dcgm-exporter's collect
    interval; a scrape sends the latest rendering."""

    name = "simulator"

    def __init__(
        self,
        scenario: Scenario,
        *,
        speed: float = 1.0,
        seed: int | None = None,
        on_log: LogSink | None = None,
        name: str = "simulator",
    ) -> None:
        self.name = name
        # real time: the simulated clock starts now, so sample times line up with Prometheus' scrapes
        self.sim = Simulation(scenario.model_copy(update={"start": datetime.now(UTC)}), seed)
        self.samples = SampleBuilder(self.sim)
        self.labels = LabelStrings()
        self.speed = speed
        self.on_log = on_log
        self._lock = threading.Lock()
        self._prefixes: dict[tuple[str, bytes], list[bytes]] = {}
        self._blocks: list[Block] = self.samples.blocks()
        self._text = self._render(self._blocks)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def advance(self) -> None:
        """One tick: step the simulation, snapshot its samples, hand new log lines to the sink."""
        self.sim.step()
        blocks = self.samples.blocks()
        text = self._render(blocks)
        lines = self.sim.drain_logs(self.sim.t)
        with self._lock:
            self._blocks, self._text = blocks, text
        if self.on_log is not None:
            for t, source, line in lines:
                # on the wall clock, like the scrapes: a line logged at simulated time t reaches the sink as the
                # wall time at which the run reached t (they differ when speed != 1)
                self.on_log(self.sim.t0 + (t - self.sim.t0) / self.speed, source, line)

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

    def _render(self, blocks: list[Block]) -> bytes:
        rendered = self.labels.sync(self.samples.labels.strings)
        if len(self._prefixes) > 4000:  # job churn: forget old label combinations
            self._prefixes.clear()
        fb = FamilyBuilder()
        for b in blocks:
            key = (b.name, b.label_ids.tobytes())
            pre = self._prefixes.get(key)
            if pre is None:
                pre = self._prefixes[key] = [(b.name + rendered[i] + " ").encode() for i in b.label_ids.tolist()]
            fb.add_prefixed(b.name, pre, b.values)
        return render(fb.families())

    def snapshot(self) -> list[Block]:
        with self._lock:
            return list(self._blocks)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            return [Prerendered(self.name, self._text)]
