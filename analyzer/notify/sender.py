"""Delivering the outbox: POST each event to its target, in order, retried with backoff until it lands."""

from __future__ import annotations

import json
import logging

import httpx

from hpcmind.settings import NotifySettings

from .. import outbox
from ..service import Metrics
from ..store import Store, notify_outbox
from .events import signature, slack_message

log = logging.getLogger("hpcmind.notify")
MAX_BACKOFF = 300.0
BATCH = 50


class NotifySender:
    def __init__(self, n: NotifySettings, store: Store, metrics: Metrics) -> None:
        self.n = n
        self.store = store
        self.metrics = metrics
        self.client = httpx.Client(timeout=n.timeout_s)
        self.failing: set[str] = set()

    def pending(self) -> int:
        return outbox.pending(self.store, notify_outbox)

    def _request(self, target: str, ev: dict[str, object]) -> tuple[str, bytes, dict[str, str]]:
        if target == "slack":
            return self.n.slack_url, json.dumps(slack_message(ev)).encode(), {"Content-Type": "application/json"}
        body = json.dumps(ev, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-HPCMind-Event-Id": str(ev["id"])}
        secret = self.n.secret.get_secret_value()
        if secret:
            headers["X-HPCMind-Signature"] = signature(secret, body)
        return self.n.webhook_url, body, headers

    def drain_once(self) -> int:
        """Send what is due; a target that fails is retried later and its later events wait (order per target)."""
        sent, blocked = 0, set()
        for row in outbox.due(self.store, notify_outbox, BATCH):
            if row.target in blocked:
                continue
            url, body, headers = self._request(row.target, row.payload)
            if not url:  # the target was removed from the configuration: the event has nowhere to go
                self._finish(row.id, "target no longer configured")
                continue
            err = ""
            try:
                r = self.client.post(url, content=body, headers=headers)
                if r.status_code >= 300:
                    err = f"HTTP {r.status_code}: {r.text[:200]}"
            except httpx.HTTPError as exc:
                err = f"{type(exc).__name__}: {exc}"
            if err:
                blocked.add(row.target)
                self.metrics.notify_failures.labels(row.target).inc()
                outbox.retry_later(self.store, notify_outbox, row, err, MAX_BACKOFF)
                if row.target not in self.failing:  # once per outage
                    log.warning("%s notification failed (kept in the outbox, retrying): %s", row.target, err)
                self.failing.add(row.target)
                continue
            if row.target in self.failing:
                log.warning("%s notifications are delivered again", row.target)
                self.failing.discard(row.target)
            self._finish(row.id, None)
            sent += 1
        self.metrics.notify_outbox.set(self.pending())
        return sent

    def _finish(self, oid: int, err: str | None) -> None:
        outbox.finish(self.store, notify_outbox, oid, err)

    def close(self) -> None:
        self.client.close()
