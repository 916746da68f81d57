"""The analyzer's front door: bearer tokens for the API, a signed session for pages, limits before the body."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from analyzer.access import check_exposure
from analyzer.access.routes import safe_next
from analyzer.access.session import COOKIE, Role, issue, role_of_cookie
from analyzer.app import create_app
from hpcmind.errors import UsageError
from hpcmind.settings import load_settings
from tests.unit.test_analyzer_app import TOKEN, XID, H, incidents, make_settings, payload, wait_for

pytestmark = pytest.mark.unit
VIEWER = "v1ewer-token-for-pages"
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path, viewer_token=VIEWER, max_body_bytes=4096))) as c:
        yield c


def test_the_api_refuses_before_reading_or_parsing_the_body(client: TestClient) -> None:
    r = client.post("/api/v1/alertmanager", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 401  # not 422: the body was never parsed
    r = client.post("/api/v1/alertmanager", content=b"x" * 10_000, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 413  # its size is refused first, before any token is compared
    assert (
        client.post("/api/v1/diagnose", json={"logs": []}, headers={"Authorization": f"Bearer {VIEWER}"}).status_code
        == 401
    )


def test_bodies_over_the_limit_are_413_by_length_and_while_streaming(client: TestClient) -> None:
    big = b'{"logs": [' + b'{"line": "x"},' * 400 + b'{"line": "y"}]}'
    r = client.post("/api/v1/diagnose", content=big, headers={**H, "Content-Type": "application/json"})
    assert r.status_code == 413 and "4,096-byte limit" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"logs": ['
        for _ in range(400):
            yield b'{"line": "x"},'
        yield b'{"line": "y"}]}'

    r = client.post("/api/v1/diagnose", content=chunks(), headers={**H, "Content-Type": "application/json"})
    assert r.status_code == 413
    ok = client.post(
        "/api/v1/diagnose",
        json={"logs": [{"line": "NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus."}]},
        headers=H,
    )
    assert ok.status_code == 200 and ok.json()["root_cause"] == "gpu_hardware_fault"


def test_a_10_mb_webhook_is_413_at_the_default_limit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "hpcmind.access"), TestClient(create_app(make_settings(tmp_path))) as c:
        body = b'{"alerts": [' + b" " * (10 * 1024 * 1024) + b"]}"
        r = c.post("/api/v1/alertmanager", content=body, headers={**H, "Content-Type": "application/json"})
        assert r.status_code == 413 and "8,388,608-byte limit" in r.json()["detail"]
        assert c.app.state.runtime.service.pending_payloads() == []  # type: ignore[attr-defined]
    assert "HPCMIND_ANALYZER__MAX_BODY_BYTES" in caplog.text  # the operator sees why


def test_pages_need_a_session_and_the_login_sets_one(client: TestClient) -> None:
    client.post("/api/v1/alertmanager", json=payload(XID), headers=H)
    iid = wait_for(lambda: incidents(client))[0]["id"]
    for path in (f"/incidents/{iid}", "/runbooks/gpu_hardware_fault", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 401, path  # an API client: 401, not a page
        r = client.get(path, headers=HTML, follow_redirects=False)  # a browser: to the login page and back
        assert r.status_code == 303 and urlsplit(r.headers["location"]).path == "/login", path
    r = client.get(f"/incidents/{iid}?tab=evidence", headers=HTML, follow_redirects=False)
    assert r.headers["location"] == f"/login?next=%2Fincidents%2F{iid}%3Ftab%3Devidence"

    form = client.get("/login?next=/incidents/1")
    assert form.status_code == 200 and 'name="token"' in form.text and 'value="/incidents/1"' in form.text
    bad = client.post("/login", data={"token": "guess", "next": f"/incidents/{iid}"}, follow_redirects=False)
    assert bad.status_code == 401 and COOKIE not in bad.cookies
    good = client.post("/login", data={"token": VIEWER, "next": f"/incidents/{iid}"}, follow_redirects=False)
    assert good.status_code == 303 and good.headers["location"] == f"/incidents/{iid}"
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    client.cookies.set(COOKIE, good.cookies[COOKIE])
    page = client.get(f"/incidents/{iid}", headers=HTML)
    assert page.status_code == 200 and "gpu_hardware_fault" in page.text
    # a viewer session reads pages, never the API
    assert client.get("/api/v1/incidents").status_code == 401
    client.get("/logout")
    client.cookies.clear()
    assert client.get(f"/incidents/{iid}").status_code == 401


def test_open_routes_stay_open(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/metrics").status_code == 200
    assert client.get("/static/swagger-ui/swagger-ui.css").status_code == 200


def test_session_cookies_cannot_be_forged_promoted_or_kept_forever(tmp_path: Path) -> None:
    a = make_settings(tmp_path, viewer_token=VIEWER).analyzer
    v = issue(Role.viewer, a)
    assert role_of_cookie(v, a) is Role.viewer
    assert role_of_cookie("admin" + v[len("viewer") :], a) is None  # the MAC covers the role
    assert role_of_cookie(issue(Role.admin, a, now=1_000_000), a) is None  # expired
    other = make_settings(tmp_path, api_token="rotated-token-0123456789").analyzer
    assert role_of_cookie(v, other) is None  # rotating the API token ends every session
    assert role_of_cookie("garbage", a) is None and role_of_cookie("", a) is None


@pytest.mark.parametrize(
    ("target", "want"),
    [
        ("/incidents/4", "/incidents/4"),
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
        ("/\\evil", "/"),
        ("relative", "/"),
    ],
)
def test_login_redirects_only_to_this_server(target: str, want: str) -> None:
    assert safe_next(target) == want


def test_no_default_token_beyond_loopback(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(UsageError, match="HPCMIND_ANALYZER__API_TOKEN"):
        check_exposure(load_settings(analyzer={"host": "0.0.0.0"}).analyzer)
    with pytest.raises(UsageError):
        check_exposure(load_settings(analyzer={"host": "10.1.2.3", "api_token": ""}).analyzer)
    check_exposure(load_settings(analyzer={"host": "0.0.0.0", "api_token": "a-long-enough-secret-token"}).analyzer)
    from analyzer.access import gate

    gate._warned = False  # once per process: this test wants to see it
    with caplog.at_level(logging.WARNING, logger="hpcmind.access"):
        check_exposure(load_settings(analyzer={"host": "127.0.0.1"}).analyzer)
        check_exposure(load_settings(analyzer={"host": "127.0.0.1"}).analyzer)
    assert caplog.text.count("change-me") == 1
    assert "change-me" in caplog.text
    assert TOKEN  # the suite's own token is not the default


def test_the_openapi_document_lists_every_status_the_api_answers(client: TestClient) -> None:
    doc = client.get("/openapi.json", headers=H).json()
    ops = {(m, p): op for p, item in doc["paths"].items() for m, op in item.items()}
    for (_, path), op in ops.items():
        if path.startswith("/api/"):
            assert {"200", "401", "413"} <= set(op["responses"]), path
    assert "503" in ops[("post", "/api/v1/alertmanager")]["responses"]
    assert "404" in ops[("get", "/api/v1/incidents/{incident_id}")]["responses"]
    too_big = client.get("/api/v1/incidents/99999999999999999999", headers=H)
    assert too_big.status_code == 422  # not a 500 from an integer overflow
    assert client.get("/api/v1/incidents", params={"offset": 2**64}, headers=H).status_code == 422


def test_mcp_behind_the_gate_answers_with_the_token_only(tmp_path: Path) -> None:
    """The MCP endpoint is an ASGI app on a Route: with the token it initializes, without it is 401."""
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    accept = {"Accept": "application/json, text/event-stream"}
    with TestClient(create_app(make_settings(tmp_path)), base_url="http://127.0.0.1:8080") as c:
        r = c.post("/mcp", json=init, headers={**H, **accept})
        assert r.status_code == 200 and r.json()["result"]["serverInfo"]["name"] == "hpcmind"
        assert c.post("/mcp", json=init, headers=accept).status_code == 401
