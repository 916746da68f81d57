"""Schemathesis against the running analyzer: every route in its OpenAPI document, with the token — no server
error, every answer's status code and body as documented."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from analyzer.app import create_app
from hpcmind.services.proc import http_ok, wait_until
from tests.conftest import free_port
from tests.unit.test_analyzer_app import H, make_settings


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    port = free_port()
    s = make_settings(tmp_path_factory.mktemp("fuzz"), port=port)
    server = uvicorn.Server(uvicorn.Config(create_app(s), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(base + "/healthz"), 120, "analyzer")
        api = schemathesis.openapi.from_url(base + "/openapi.json", headers=H)
        api.config.update(base_url=base)
        yield api
    finally:
        server.should_exit = True


# no 5xx; the status code, content type, headers and body as the OpenAPI document says. Not "every schema-valid
# request is accepted": the models validate more than JSON Schema can say (an alert needs an alertname label)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
SENT = {"method", "url", "headers", "params", "json", "content", "data", "files"}  # no cookies: none are used


def test_every_route_answers_as_documented(api: schemathesis.BaseSchema) -> None:
    """Each operation its own hypothesis run (schemathesis' pytest plugin does not load on this pytest)."""
    failures: list[str] = []
    ran = 0
    client = httpx.Client(timeout=60)
    for result in api.get_all_operations():
        op = result.ok()

        @given(case=op.as_strategy())
        @settings(
            max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
        )
        def run(case: schemathesis.Case) -> None:
            # sent with httpx (requests is not usable beside urllib3-future here); schemathesis checks the answer
            kwargs = case.as_transport_kwargs(headers=H)
            r = client.request(**{k: v for k, v in kwargs.items() if k in SENT})
            case.validate_response(r, checks=CHECKS, headers=H, transport_kwargs=kwargs)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # every operation is tried; the report lists each failure
            failures.append(f"{op.method.upper()} {op.path}: {str(exc)[:600]}")
        ran += 1
    client.close()
    assert ran >= 8, f"only {ran} operations in the OpenAPI document"
    assert not failures, "\n\n".join(failures)
