"""Follow the systemd journal (`journalctl --follow --output=json`): kernel and unit messages become log records.

Kernel messages (an Xid, the OOM killer, a hung task) are `node/<host>/kernel`, a unit's are `node/<host>/<unit or
identifier>`: the names the analyzer's evidence gathering looks for. The host is the entry's `_HOSTNAME`, so a
journal gathered from other machines (`--journal-file`, e.g. via systemd-journal-remote) keeps each entry's node.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import threading
from collections import deque
from datetime import UTC, datetime
from typing import Any

from .logship import LogRecord, record_id

log = logging.getLogger("hpcmind.collector.journal")
MAX_PENDING = 10_000


def journal_command(units: list[str], kernel: bool, files: list[str], journalctl: str = "journalctl") -> list[str]:
    """The journalctl invocation: follow, JSON, only new entries of the live journal (every entry of given files)."""
    cmd = [journalctl, "--follow", "--output=json", "--no-pager", "--lines=all" if files else "--lines=0"]
    for f in files:
        cmd.append(f"--directory={f}" if not f.endswith(".journal") else f"--file={f}")
    if kernel:
        cmd.append("--dmesg")
    for u in units:
        cmd.append(f"--unit={u}")
    return cmd


def _text(v: Any) -> str:
    if isinstance(v, list):  # journald's encoding of a message that is not valid UTF-8: its bytes
        return bytes(int(b) & 0xFF for b in v).decode("utf-8", errors="replace")
    return str(v)


def to_record(entry: dict[str, Any]) -> LogRecord | None:
    """One journal entry as a log record, or None when it carries no message."""
    if "MESSAGE" not in entry:
        return None
    host = _text(entry.get("_HOSTNAME", "localhost"))
    kernel = entry.get("_TRANSPORT") == "kernel" or entry.get("SYSLOG_IDENTIFIER") == "kernel"
    who = "kernel" if kernel else _text(entry.get("_SYSTEMD_UNIT") or entry.get("SYSLOG_IDENTIFIER") or "journal")
    try:
        ts = datetime.fromtimestamp(int(entry["__REALTIME_TIMESTAMP"]) / 1e6, UTC)
    except (KeyError, ValueError, OverflowError):
        ts = datetime.now(UTC)
    cursor = _text(entry.get("__CURSOR", ""))
    line = _text(entry["MESSAGE"])
    return LogRecord(
        record_id("journal", cursor or line, ts.timestamp()),
        ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        f"node/{host}/{who.removesuffix('.service')}",
        line,
    )


class JournalFollower:
    """journalctl in a child process; its JSON lines are parsed on a reader thread and handed out by poll()."""

    def __init__(self, cmd: list[str]) -> None:
        self.cmd = cmd
        self._pending: deque[LogRecord] = deque(maxlen=MAX_PENDING)
        self._lock = threading.Lock()
        self.skipped = 0
        # not a pipe: nobody drains it while stdout is being read; open as long as the child runs
        self._err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._err, text=True, bufsize=1)
        except OSError as exc:
            raise OSError(f"{cmd[0]}: {exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self._read, name="journal", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                rec = to_record(json.loads(raw))
            except (json.JSONDecodeError, TypeError, AttributeError):
                self.skipped += 1
                continue
            if rec is not None:
                with self._lock:
                    self._pending.append(rec)
        code = self.proc.wait()
        if code not in (0, -15):
            self._err.seek(0)
            log.warning("journalctl exited %s: %s", code, self._err.read().strip()[:300])

    def poll(self) -> list[LogRecord]:
        with self._lock:
            out = list(self._pending)
            self._pending.clear()
        return out

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._thread.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._err.close()
