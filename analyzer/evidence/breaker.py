"""A circuit breaker for the evidence source: one slow or dead Prometheus must not cost every incident its timeout.

closed: queries go out. A transport failure (timeout, refused) opens it: for `cooldown` seconds every query is
skipped at once and marked so in the evidence. Then half-open: one probe query goes out; success closes it, failure
opens it for another cooldown. Shared by every worker of one analyzer (thread-safe).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Breaker:
    def __init__(self, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown = cooldown
        self.clock = clock
        self._lock = threading.Lock()
        self._opened_at: float | None = None
        self._probing = False
        self.reason = ""
        self.opened = 0  # how many times it opened (a metric)

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self._opened_at >= self.cooldown else "open"

    def allow(self) -> tuple[bool, str]:
        """(may this query go out, why not)."""
        with self._lock:
            st = self._state()
            if st == "closed":
                return True, ""
            if st == "half_open" and not self._probing:
                self._probing = True  # this caller is the probe; the others wait for its answer
                return True, ""
            left = max(0.0, self.cooldown - (self.clock() - (self._opened_at or 0.0)))
            wait = f"retry in {left:.0f}s" if st == "open" else "a probe is under way"
            return False, f"skipped: Prometheus breaker open after {self.reason} ({wait})"

    def success(self) -> None:
        with self._lock:
            self._opened_at, self._probing, self.reason = None, False, ""

    def failure(self, reason: str) -> None:
        with self._lock:
            if self._opened_at is None or self._probing:
                self.opened += 1
            self._opened_at, self._probing, self.reason = self.clock(), False, reason
