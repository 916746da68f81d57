"""Kernel messages from the systemd journal: real journalctl reading a real journal file (written by Debian's
systemd-journal-remote, as a log-gathering host would), shipped by `hpcmind collect --journal-file`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from collector.journal import JournalFollower, journal_command, to_record
from hpcmind.services.proc import apt_install
from tests.conftest import ROOT, free_port, stop_process

REMOTE = Path("/lib/systemd/systemd-journal-remote")
XID = "NVRM: Xid (PCI:0000:3b:00): 79, pid=4242, name=python, GPU has fallen off the bus."


@pytest.fixture(scope="module")
def journal_remote(tmp_path_factory: pytest.TempPathFactory) -> Path:
    apt_install(["systemd-journal-remote"], tmp_path_factory.mktemp("apt") / "apt.log")
    assert REMOTE.exists()
    return REMOTE


def _export(path: Path, entries: list[dict[str, str]]) -> Path:
    """Journal export format: KEY=value lines, an empty line between entries."""
    path.write_text("".join("".join(f"{k}={v}\n" for k, v in e.items()) + "\n" for e in entries))
    return path


def _entry(msg: str, t_us: int, host: str = "gpu-a001", kernel: bool = True) -> dict[str, str]:
    e = {
        "__CURSOR": f"s=0;i={t_us}",
        "__REALTIME_TIMESTAMP": str(t_us),
        "__MONOTONIC_TIMESTAMP": str(t_us),
        "_BOOT_ID": "0123456789abcdef0123456789abcdef",
        "_HOSTNAME": host,
        "PRIORITY": "3",
        "MESSAGE": msg,
    }
    e |= {"_TRANSPORT": "kernel", "SYSLOG_IDENTIFIER": "kernel"} if kernel else {
        "_TRANSPORT": "syslog", "SYSLOG_IDENTIFIER": "slurmd", "_SYSTEMD_UNIT": "slurmd.service",
    }  # fmt: skip
    return e


def _poll(fn: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if v := fn():
            return v
        time.sleep(0.2)
    raise AssertionError(f"{what}: nothing after {timeout:.0f}s")


def _write(remote: Path, journal: Path, export: Path) -> None:
    subprocess.run([str(remote), f"--output={journal}", str(export)], check=True, capture_output=True, timeout=60)


def test_kernel_entries_are_followed_with_their_host_and_time(journal_remote: Path, tmp_path: Path) -> None:
    t0 = int(time.time() * 1e6)
    journal = tmp_path / "remote-gpu-a001.journal"
    _write(journal_remote, journal, _export(tmp_path / "a.export", [
        _entry(XID, t0), _entry("error: Node configuration differs from hardware", t0 + 1, kernel=False),
    ]))  # fmt: skip
    f = JournalFollower(journal_command([], True, [str(journal)]))
    try:
        got = _poll(f.poll, 60, "the journal's kernel entry")
        assert [(r.source, r.line) for r in got] == [("node/gpu-a001/kernel", XID)]  # --dmesg: the unit's is not
        assert got[0].ts == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 / 1e6))
        # appended later (journalctl follows the file): delivered once, nothing repeated
        _write(
            journal_remote, journal, _export(tmp_path / "b.export", [_entry("NVRM: Xid (PCI:0000:3b:00): 48", t0 + 5)])
        )
        more = _poll(f.poll, 60, "the appended entry")
        assert [r.line for r in more] == ["NVRM: Xid (PCI:0000:3b:00): 48"] and more[0].id != got[0].id
    finally:
        f.stop()
    assert not f.alive()


def test_units_and_undecodable_messages() -> None:
    rec = to_record({"MESSAGE": [78, 86, 255, 77], "_HOSTNAME": "n1", "_SYSTEMD_UNIT": "slurmd.service"})
    assert rec is not None and rec.source == "node/n1/slurmd" and rec.line == "NV\ufffdM"
    assert to_record({"_HOSTNAME": "n1"}) is None
    assert journal_command(["slurmd"], False, []) == [
        "journalctl", "--follow", "--output=json", "--no-pager", "--lines=0", "--unit=slurmd",
    ]  # fmt: skip


class Receiver:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.lines += json.loads(body)["lines"]
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.httpd.shutdown()
    r.httpd.server_close()


def test_collect_ships_the_journal_to_the_log_ingest(journal_remote: Path, tmp_path: Path, receiver: Receiver) -> None:
    journal = tmp_path / "gathered.journal"
    _write(journal_remote, journal, _export(tmp_path / "a.export", [_entry(XID, int(time.time() * 1e6), "gpu-b007")]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCMIND_")}
    env |= {"HPCMIND_ANALYZER__PUBLIC_URL": receiver.url, "HPCMIND_ANALYZER__API_TOKEN": "t"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpcmind", "collect", "--source", "proc", "--log-bus", "http",
         "--port", str(free_port()), "--journal-file", str(journal)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _poll(lambda: receiver.lines, 90, "the journal line at the log ingest")
    finally:
        stop_process(proc)
    assert [(x["source"], x["line"]) for x in receiver.lines] == [("node/gpu-b007/kernel", XID)]


def test_a_missing_journal_file_is_a_usage_error(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    res = run_cli("collect", "--source", "proc", "--log-bus", "none", "--journal-file", str(tmp_path / "nope"))
    assert res.returncode == 2 and "--journal-file" in res.stderr and "no such file" in res.stderr
