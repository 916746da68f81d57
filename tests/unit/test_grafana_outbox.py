"""One annotation per incident, even when Grafana answers after the timeout or the analyzer dies mid-write."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from analyzer.alertmanager import AlertmanagerPayload
from analyzer.grafana import GrafanaWriter
from analyzer.rca import SignatureEngine
from analyzer.service import AnalyzerService, Metrics
from analyzer.store import Store
from hpcmind.settings import Settings, load_settings
from tests.standins.grafana import GrafanaStandIn
from tests.unit.test_analyzer_app import XID, payload
from tests.unit.test_crash_recovery import Killed

pytestmark = pytest.mark.unit


def _setup(tmp: Path, g: GrafanaStandIn) -> tuple[Settings, AnalyzerService]:
    s = load_settings(
        analyzer={
            "prometheus_url": "http://127.0.0.1:9",
            "database_url": f"sqlite:///{tmp / 'g.db'}",
            "grafana_url": f"http://127.0.0.1:{g.port}",
            "grafana_token": "testtoken",
        }
    )
    svc = AnalyzerService(s, Store(s.analyzer.database_url), SignatureEngine())
    svc.process(svc.accept(AlertmanagerPayload.model_validate(payload(XID))))
    return s, svc


def _drain_until_empty(w: GrafanaWriter, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while w.pending() and time.monotonic() < deadline:
        w.drain_once()
        time.sleep(0.2)
    assert w.pending() == 0


def test_a_grafana_slower_than_the_timeout_gets_one_annotation(tmp_path: Path) -> None:
    g = GrafanaStandIn(token="testtoken").start()
    try:
        s, svc = _setup(tmp_path, g)
        g.answer_delay = 6.0  # the writer gives up after 5 s; Grafana has already stored it
        w = GrafanaWriter(s, svc.store, Metrics(), "http://analyzer")
        assert w.drain_once() == 0 and len(g.annotations) == 1
        g.answer_delay = 0.0
        _drain_until_empty(w)
        assert len(g.annotations) == 1
        [ann] = g.annotations
        assert "hpcmind-incident:1" in ann["tags"] and any(t.startswith("hpcmind-store:") for t in ann["tags"])
    finally:
        g.stop()


def test_a_stop_between_create_and_storing_its_id_does_not_duplicate(tmp_path: Path) -> None:
    g = GrafanaStandIn(token="testtoken").start()
    try:
        s, svc = _setup(tmp_path, g)
        w = GrafanaWriter(s, svc.store, Metrics(), "http://analyzer")

        def die(iid: int, aid: int) -> None:
            raise Killed

        w._remember = die  # type: ignore[method-assign]
        with pytest.raises(Killed):
            w.drain_once()
        assert len(g.annotations) == 1
        again = GrafanaWriter(s, Store(s.analyzer.database_url), Metrics(), "http://analyzer")  # the restart
        _drain_until_empty(again)
        assert len(g.annotations) == 1
        # later diagnoses rewrite that same annotation
        svc.diagnose_incident(1, force=True)
        _drain_until_empty(again)
        assert len(g.annotations) == 1
    finally:
        g.stop()


def test_two_stores_never_adopt_each_others_annotations(tmp_path: Path) -> None:
    g = GrafanaStandIn(token="testtoken").start()
    try:
        for sub in ("a", "b"):
            (tmp_path / sub).mkdir()
            s, svc = _setup(tmp_path / sub, g)
            _drain_until_empty(GrafanaWriter(s, svc.store, Metrics(), "http://analyzer"))
        assert len(g.annotations) == 2  # both are incident 1, of different analyzers
    finally:
        g.stop()


def test_an_annotation_deleted_in_grafana_is_written_again_not_retried_forever(tmp_path: Path) -> None:
    g = GrafanaStandIn(token="testtoken").start()
    try:
        s, svc = _setup(tmp_path, g)
        w = GrafanaWriter(s, svc.store, Metrics(), "http://analyzer")
        _drain_until_empty(w)
        g.annotations.clear()  # an operator deleted it
        svc.diagnose_incident(1, force=True)  # a re-diagnosis rewrites it: the update meets a 404
        _drain_until_empty(w, deadline_s=20)
        assert len(g.annotations) == 1 and "hpcmind-incident:1" in g.annotations[0]["tags"]
    finally:
        g.stop()
