"""Log shipping: follow log sources, batch, publish to the log bus (HTTP ingest or Kafka), at least once.

Every line gets a stable id (source + position), so a consumer can drop the duplicates that at-least-once delivery
allows. The buffer is bounded: when it is full, new lines are dropped, counted, and a warning is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcmind.logship")
_NODE = re.compile(r"^(?:node|host)/([^/]+)")


@dataclass(frozen=True)
class LogRecord:
    id: str
    ts: str
    source: str
    line: str

    @property
    def node(self) -> str:
        m = _NODE.match(self.source)
        return m[1] if m else self.source.split("/")[0]

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class DeliveryError(RuntimeError):
    """A batch could not be delivered now; the shipper retries it."""


class RejectedError(RuntimeError):
    """The bus refused the batch for good (4xx other than 429); retrying would not help."""


class Publisher(Protocol):
    bus: str

    def publish(self, batch: list[LogRecord]) -> None: ...

    def close(self) -> None: ...


class HttpPublisher:
    """POST batches to the analyzer's log ingest (`/api/v1/logs`, bearer token)."""

    bus = "http"

    def __init__(self, url: str, token: str = "", timeout: float = 5.0) -> None:
        self.url = url
        self.client = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {token}"} if token else {})

    def publish(self, batch: list[LogRecord]) -> None:
        try:
            r = self.client.post(self.url, json={"lines": [x.as_dict() for x in batch]})
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{self.url}: {type(exc).__name__}") from None
        if r.status_code in (429, 503) or r.status_code >= 500:
            raise DeliveryError(f"{self.url}: HTTP {r.status_code}")
        if r.status_code >= 400:
            raise RejectedError(f"{self.url}: HTTP {r.status_code}: {r.text[:200]}")

    def close(self) -> None:
        self.client.close()


class KafkaPublisher:
    """aiokafka producer on its own event loop thread; key = node, value = the record as JSON."""

    bus = "kafka"

    def __init__(self, bootstrap: str, topic: str) -> None:
        from aiokafka import AIOKafkaProducer

        self.topic = topic
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="kafka-producer", daemon=True)
        self._thread.start()

        async def make() -> Any:
            p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
            await p.start()
            return p

        self.producer = asyncio.run_coroutine_threadsafe(make(), self.loop).result(timeout=30)

    def publish(self, batch: list[LogRecord]) -> None:
        async def send() -> None:
            futs = [
                await self.producer.send(self.topic, json.dumps(x.as_dict()).encode(), key=x.node.encode())
                for x in batch
            ]
            await asyncio.gather(*futs)

        try:
            asyncio.run_coroutine_threadsafe(send(), self.loop).result(timeout=30)
        except Exception as exc:
            raise DeliveryError(f"kafka {self.topic}: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.producer.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


class LogShipper:
    def __init__(
        self,
        publisher: Publisher,
        *,
        max_buffer: int = 50_000,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        retry_base: float = 0.2,
        retry_max: float = 10.0,
    ) -> None:
        self.pub = publisher
        self.buf: deque[LogRecord] = deque()
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retry_base, self.retry_max = retry_base, retry_max
        self.delivered = 0
        self.retries = 0
        self.dropped: dict[str, int] = {"buffer_full": 0, "rejected": 0}
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, rec: LogRecord) -> bool:
        with self._cv:
            if len(self.buf) >= self.max_buffer:
                self.dropped["buffer_full"] += 1
                if self.dropped["buffer_full"] in (1, 10, 100) or self.dropped["buffer_full"] % 1000 == 0:
                    log.warning(
                        "log buffer full (%d lines): dropped %d lines so far",
                        self.max_buffer,
                        self.dropped["buffer_full"],
                    )
                return False
            self.buf.append(rec)
            if len(self.buf) >= self.batch_size:
                self._cv.notify()
            return True

    def _take(self) -> list[LogRecord]:
        with self._cv:
            if not self.buf:
                self._cv.wait(self.flush_interval)
            return [self.buf[i] for i in range(min(self.batch_size, len(self.buf)))]

    def _confirm(self, n: int) -> None:
        with self._cv:
            for _ in range(n):
                self.buf.popleft()
            self.delivered += n

    def flush_once(self) -> int:
        """Deliver one batch (retrying with backoff until it goes or the shipper stops); returns lines delivered."""
        batch = self._take()
        if not batch:
            return 0
        delay = self.retry_base
        streak = 0
        while True:
            try:
                self.pub.publish(batch)
            except RejectedError as exc:
                self.dropped["rejected"] += len(batch)
                log.warning("log bus rejected %d lines, dropped: %s", len(batch), exc)
                with self._cv:
                    for _ in batch:
                        self.buf.popleft()
                return 0
            except DeliveryError as exc:
                self.retries += 1
                streak += 1
                # visible at the default log level: the first failure, then each time the backoff tops out
                level = logging.WARNING if streak == 1 or delay >= self.retry_max else logging.INFO
                log.log(
                    level,
                    "log delivery failed (%d in a row, %d lines waiting), retrying in %.1fs: %s",
                    streak, len(self.buf), delay, exc,
                )  # fmt: skip
                if self._stop.wait(delay):
                    return 0  # stopping: the batch stays buffered (still counted, not lost silently)
                delay = min(self.retry_max, delay * 2)
                continue
            if streak:
                log.warning("log delivery recovered after %d failed attempts", streak)
            self._confirm(len(batch))
            return len(batch)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self.flush_once()

        self._thread = threading.Thread(target=loop, name="logship", daemon=True)
        self._thread.start()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted has been delivered (or dropped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cv:
                if not self.buf:
                    return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.buf:
            log.warning("log shipper stopped with %d undelivered lines", len(self.buf))
        self.pub.close()

    def collect(self) -> Iterable[Metric]:
        bus = self.pub.bus
        sent = CounterMetricFamily("hpcmind_logship_lines", "Log lines delivered to the log bus.", labels=["bus"])
        sent.add_metric([bus], self.delivered)
        dropped = CounterMetricFamily(
            "hpcmind_logship_dropped_lines", "Log lines dropped (buffer full or rejected).", labels=["bus", "reason"]
        )
        for reason, n in self.dropped.items():
            dropped.add_metric([bus, reason], n)
        retries = CounterMetricFamily(
            "hpcmind_logship_retries", "Delivery attempts that failed and were retried.", labels=["bus"]
        )
        retries.add_metric([bus], self.retries)
        size = GaugeMetricFamily(
            "hpcmind_logship_buffer_lines", "Log lines waiting in the shipper's buffer.", labels=["bus"]
        )
        size.add_metric([bus], len(self.buf))
        return [sent, dropped, retries, size]


def record_id(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()[:20]


class FileFollower:
    """Tails files matching a glob (Slurm job output files, a kernel log); new lines become records.

    `source` may use `{stem}` and `{jobid}` (digits in the file name), e.g. `job/{jobid}` for slurm-%j.out.
    """

    def __init__(self, pattern: str, source: str) -> None:
        self.pattern = pattern
        self.source = source
        self._pos: dict[tuple[str, int], int] = {}

    def _source_for(self, path: Path) -> str:
        digits = re.findall(r"\d+", path.name)
        return self.source.format(stem=path.stem, jobid=digits[-1] if digits else path.stem)

    def poll(self) -> list[LogRecord]:
        out = []
        base = Path(self.pattern.split("*")[0]).parent if "*" in self.pattern else Path(self.pattern).parent
        rel = self.pattern[len(str(base)) + 1 :] if str(base) != "." else self.pattern
        for path in sorted(base.glob(rel)):
            try:
                st = path.stat()
                key = (str(path), st.st_ino)
                pos = self._pos.get(key, 0)
                if st.st_size < pos:  # truncated or rotated in place
                    pos = 0
                with open(path, "rb") as fh:
                    fh.seek(pos)
                    data = fh.read()
            except OSError:
                continue
            end = data.rfind(b"\n") + 1  # only complete lines
            src = self._source_for(path)
            offset = pos
            for raw in data[:end].split(b"\n")[:-1]:
                line = raw.decode("utf-8", errors="replace")
                out.append(
                    LogRecord(
                        record_id(path, st.st_ino, offset),
                        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        src,
                        line,
                    )
                )
                offset += len(raw) + 1
            self._pos[key] = pos + end
        return out
