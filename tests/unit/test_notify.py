"""Outgoing incident events: hpcmind.incident.v1 to a webhook (schema, signature, dedup id) and a Slack message,
through the outbox — a receiver that is down loses nothing and gets each event once it is back."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from analyzer.app import create_app
from analyzer.notify.events import schema, slack_message
from tests.unit.test_analyzer_app import XID, H, make_settings, payload, wait_for

pytestmark = pytest.mark.unit
SECRET = "s3cret"


class Receiver:
    """A real HTTP endpoint on loopback that records what it is sent and can be told to fail."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, str], bytes]] = []
        self.fail = 0  # answer 503 to this many more requests
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if rec.fail > 0:
                    rec.fail -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                rec.got.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(b) for p, _, b in self.got if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _settings(tmp_path: Path, r: Receiver) -> Any:
    s = make_settings(tmp_path)
    s.notify = s.notify.model_validate(
        {"webhook_url": r.url + "/hook", "slack_url": r.url + "/slack", "secret": SECRET, "timeout_s": 5}
    )
    return s


def test_opened_and_resolved_reach_the_webhook_and_slack_once_each(tmp_path: Path, receiver: Receiver) -> None:
    receiver.fail = 3  # down when the incident opens: the events wait in the outbox
    with TestClient(create_app(_settings(tmp_path, receiver))) as c:
        assert c.post("/api/v1/alertmanager", json=payload(XID), headers=H).status_code == 200
        opened = wait_for(lambda: receiver.events("/hook") or None, timeout=120)
        wait_for(lambda: receiver.events("/slack") or None, timeout=120)
        resolved_xid = {**XID, "status": "resolved", "endsAt": "2026-11-21T10:20:00Z"}
        c.post("/api/v1/alertmanager", json=payload(resolved_xid, status="resolved"), headers=H)
        wait_for(lambda: len(receiver.events("/hook")) == 2 or None, timeout=120)
        wait_for(lambda: len(receiver.events("/slack")) == 2 or None, timeout=120)
        c.post("/api/v1/alertmanager", json=payload(XID), headers=H)  # a re-send changes nothing
        metrics = c.get("/metrics").text
    hooks = receiver.events("/hook")
    assert [e["event"] for e in hooks] == ["opened", "resolved"] and opened[0] == hooks[0]
    for e in hooks:
        jsonschema.validate(e, schema())
    o = hooks[0]["incident"]
    assert o["root_cause"] == "gpu_hardware_fault" and o["culprit"] == {"node": "gpu-a012", "gpu": "3", "job": "4211"}
    assert o["url"].endswith(f"/incidents/{o['id']}") and o["alerts"] == ["GPUXidError"] and o["first_step"]
    assert hooks[1]["incident"]["state"] == "resolved" and hooks[1]["incident"]["resolved_at"]
    assert len({e["id"] for e in hooks}) == 2
    for _, headers, body in (g for g in receiver.got if g[0] == "/hook"):
        want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-hpcmind-signature"] == want
        assert headers["x-hpcmind-event-id"] == json.loads(body)["id"]
    slack = receiver.events("/slack")
    assert slack[0]["text"].startswith("Incident ") and "gpu_hardware_fault" in slack[0]["text"]
    assert slack[1]["text"].startswith("Resolved incident")
    assert "hpcmind_notify_failures_total" in metrics


def test_the_event_schema_holds_what_the_events_say() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    ev = {
        "schema": "hpcmind.incident.v1",
        "id": "abc:1:rediagnosed:2",
        "event": "rediagnosed",
        "sent_at": "2026-11-21T10:05:00+00:00",
        "incident": {
            "id": 1, "url": "http://a/incidents/1", "state": "open", "root_cause": "nvlink_error",
            "confidence": 0.9, "culprit": {"node": "n<1>"}, "summary": "NVLink <b>down</b> & out",
            "first_step": "drain n1", "previous_root_cause": "gpu_hardware_fault", "alerts": [],
            "onset": "2026-11-21T10:00:00+00:00", "resolved_at": None,
        },
    }  # fmt: skip
    jsonschema.validate(ev, schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**ev, "event": "exploded"}, schema())
    msg = slack_message(ev)
    text = msg["blocks"][0]["text"]["text"]
    assert msg["text"].startswith("Re-diagnosed incident 1: nvlink_error (90%)")
    assert "&lt;b&gt;down&lt;/b&gt; &amp; out" in text and "Was: gpu_hardware_fault" in text


def test_a_bad_target_url_is_a_configuration_error(tmp_path: Path) -> None:
    from hpcmind.settings import NotifySettings

    with pytest.raises(ValueError, match="http"):
        NotifySettings(webhook_url="ftp://example")
