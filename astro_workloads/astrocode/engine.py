"""AstroCode's CPU engine: batched generation with transformers, scheduled the way vLLM schedules.

Requests wait in a queue; the scheduler admits them into the running batch while the KV-cache budget (in
tokens) allows, prefills each newcomer, and decodes the whole batch one token per step. A batch that outgrows
the budget preempts its youngest request back to the queue (vLLM's recompute preemption). The numbers vLLM
exports — requests running and waiting, KV-cache usage, preemptions, token counters, time to first token, time
per output token, end-to-end latency — are kept by `EngineStats` under vLLM's metric names.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
E2E_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320)


class EngineStats:
    def __init__(self, model_name: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r, lb = self.registry, {"model_name": model_name, "engine": "0"}
        names = list(lb)

        def g(n: str, d: str) -> Any:
            return Gauge(n, d, names, registry=r).labels(**lb)

        def c(n: str, d: str) -> Any:
            return Counter(n, d, names, registry=r).labels(**lb)

        def h(n: str, d: str, b: tuple[float, ...]) -> Any:
            return Histogram(n, d, names, buckets=b, registry=r).labels(**lb)

        self.running = g("vllm:num_requests_running", "Number of requests in model execution batches.")
        self.waiting = g("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
        self.kv_usage = g("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.")
        self.preemptions = c("vllm:num_preemptions", "Cumulative number of preemption from the engine.")
        self.prompt_tokens = c("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = c("vllm:generation_tokens", "Number of generation tokens processed.")
        self._success = Counter(
            "vllm:request_success", "Count of successfully processed requests.", [*names, "finished_reason"], registry=r
        )
        self._lb = lb
        self.ttft = h("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS)
        self.tpot = h(
            "vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", TPOT_BUCKETS
        )
        self.e2e = h("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", E2E_BUCKETS)

    def success(self, reason: str) -> None:
        self._success.labels(**self._lb, finished_reason=reason).inc()


@dataclass
class Request:
    prompt_ids: list[int]
    max_tokens: int
    arrived: float = field(default_factory=time.perf_counter)
    out: list[int] = field(default_factory=list)
    first_token_at: float | None = None
    done: Future[tuple[list[int], str]] = field(default_factory=Future)


class Engine:
    """One scheduler thread around a causal LM (`model`, `tokenizer` from transformers)."""

    def __init__(
        self, model: Any, tokenizer: Any, stats: EngineStats, kv_budget_tokens: int = 4096, max_num_seqs: int = 8
    ) -> None:
        self.model, self.tok, self.stats = model, tokenizer, stats
        self.kv_budget, self.max_seqs = kv_budget_tokens, max_num_seqs
        self.waiting: deque[Request] = deque()
        self.lock = threading.Condition()
        self.stop = False
        self.thread = threading.Thread(target=self._loop, name="astrocode-engine", daemon=True)
        self.thread.start()

    def submit(self, prompt_ids: list[int], max_tokens: int) -> Future[tuple[list[int], str]]:
        req = Request(prompt_ids, max_tokens)
        with self.lock:
            self.waiting.append(req)
            self.stats.waiting.set(len(self.waiting))
            self.lock.notify()
        return req.done

    def close(self) -> None:
        with self.lock:
            self.stop = True
            self.lock.notify()
        self.thread.join(timeout=10)

    def _loop(self) -> None:
        running: list[Request] = []
        while True:
            with self.lock:
                while not self.stop and not self.waiting and not running:
                    self.lock.wait()
                if self.stop:
                    return
                used = sum(len(r.prompt_ids) + len(r.out) for r in running)
                while self.waiting and len(running) < self.max_seqs:
                    nxt = self.waiting[0]
                    if running and used + len(nxt.prompt_ids) + 1 > self.kv_budget:
                        break
                    running.append(self.waiting.popleft())
                    used += len(nxt.prompt_ids)
                self.stats.waiting.set(len(self.waiting))
            self.stats.running.set(len(running))
            self._step(running)
            used = sum(len(r.prompt_ids) + len(r.out) for r in running)
            while len(running) > 1 and used > self.kv_budget:  # out of KV blocks: recompute the youngest later
                victim = running.pop()
                used -= len(victim.prompt_ids) + len(victim.out)
                victim.out, victim.first_token_at = [], None
                with self.lock:
                    self.waiting.appendleft(victim)
                self.stats.preemptions.inc()
            self.stats.kv_usage.set(min(1.0, used / self.kv_budget))
            finished = [r for r in running if self._finished(r)]
            for r in finished:
                running.remove(r)
                self._finish(r)
            self.stats.running.set(len(running))

    def _finished(self, r: Request) -> bool:
        return len(r.out) >= r.max_tokens or (bool(r.out) and r.out[-1] == self.tok.eos_token_id)

    def _finish(self, r: Request) -> None:
        now = time.perf_counter()
        reason = "stop" if r.out and r.out[-1] == self.tok.eos_token_id else "length"
        self.stats.e2e.observe(now - r.arrived)
        if r.first_token_at is not None and len(r.out) > 1:
            self.stats.tpot.observe((now - r.first_token_at) / (len(r.out) - 1))
        self.stats.generation_tokens.inc(len(r.out))
        self.stats.success(reason)
        r.done.set_result((r.out, reason))

    def _step(self, running: list[Request]) -> None:
        """One token for every running request: the sequences are re-run whole (no paged cache on CPU here)."""
        import torch

        seqs = [r.prompt_ids + r.out for r in running]
        width = max(map(len, seqs))
        pad = self.tok.pad_token_id or 0
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):  # left padding: the last position is every sequence's next token
            ids[i, width - len(s) :] = torch.tensor(s)
            mask[i, width - len(s) :] = 1
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, -1]
        nxt = logits.argmax(-1).tolist()
        now = time.perf_counter()
        for r, t in zip(running, nxt, strict=True):
            if not r.out:
                self.stats.prompt_tokens.inc(len(r.prompt_ids))
                r.first_token_at = now
                self.stats.ttft.observe(now - r.arrived)
            r.out.append(int(t))
