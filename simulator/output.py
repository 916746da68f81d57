"""Accelerated-mode outputs: metrics.parquet (long format), logs.jsonl, ground_truth.jsonl."""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .engine import Simulation
from .samples import SampleBuilder

SCHEMA = pa.schema(
    [
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("name", pa.dictionary(pa.int32(), pa.string())),
        ("labels", pa.dictionary(pa.int32(), pa.string())),
        ("value", pa.float64()),
    ]
)


class RunWriter:
    """Writes one run directory; use as a context manager and call `tick()` after every simulation step."""

    def __init__(self, sim: Simulation, out: Path, ticks_per_row_group: int = 40, metrics: bool = True) -> None:
        self.sim, self.out = sim, out
        out.mkdir(parents=True, exist_ok=True)
        self.samples = SampleBuilder(sim)
        self.k = ticks_per_row_group
        self.metrics = metrics
        self._names: dict[str, int] = {}
        self._name_list: list[str] = []
        self._buf: list[tuple[float, list[tuple[int, np.ndarray, np.ndarray]]]] = []
        self._pq = (
            pq.ParquetWriter(out / "metrics.parquet", SCHEMA, compression="snappy", write_statistics=["timestamp"])
            if metrics
            else None
        )
        self._logs = open(out / "logs.jsonl", "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.rows = 0
        self.lines = 0

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _name_id(self, name: str) -> int:
        i = self._names.get(name)
        if i is None:
            i = self._names[name] = len(self._name_list)
            self._name_list.append(name)
        return i

    def tick(self, sim: Simulation) -> None:
        for t, source, line in sim.drain_logs(sim.t):
            self._logs.write(json.dumps({"ts": sim.iso(t), "source": source, "line": line}) + "\n")
            self.lines += 1
        if self._pq is None:
            return
        blocks = [(self._name_id(b.name), b.label_ids, b.values) for b in self.samples.blocks()]
        self._buf.append((sim.t, blocks))
        if len(self._buf) >= self.k:
            self._flush()

    def _flush(self) -> None:
        if not self._buf or self._pq is None:
            return
        ts, names, labels, values = [], [], [], []
        for t, blocks in self._buf:
            for nid, lids, vals in blocks:
                n = len(lids)
                ts.append(np.full(n, round(t * 1000), dtype=np.int64))
                names.append(np.full(n, nid, dtype=np.int32))
                labels.append(lids.astype(np.int32))
                values.append(vals)
        self._buf.clear()
        batch = pa.record_batch(
            [
                pa.array(np.concatenate(ts), type=pa.timestamp("ms", tz="UTC")),
                pa.DictionaryArray.from_arrays(pa.array(np.concatenate(names)), pa.array(self._name_list, pa.string())),
                pa.DictionaryArray.from_arrays(
                    pa.array(np.concatenate(labels)), pa.array(self.samples.labels.strings, pa.string())
                ),
                pa.array(np.concatenate(values), type=pa.float64()),
            ],
            schema=SCHEMA,
        )
        self.rows += batch.num_rows
        self._pq.write_batch(batch)

    def close(self) -> None:
        self._flush()
        if self._pq is not None:
            self._pq.close()
            self._pq = None
        for t, source, line in self.sim.drain_logs(float("inf")):
            if t <= self.sim.t:
                self._logs.write(json.dumps({"ts": self.sim.iso(t), "source": source, "line": line}) + "\n")
                self.lines += 1
        self._logs.close()
        with open(self.out / "ground_truth.jsonl", "w", encoding="utf-8") as fh:
            for g in self.sim.truth:
                fh.write(json.dumps(g.as_dict(self.sim.iso)) + "\n")
