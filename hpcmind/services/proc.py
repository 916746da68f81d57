"""Background processes with pid files, readiness waits and Debian package installs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx


class ServiceError(RuntimeError):
    """A service could not be installed, started or stopped; the message says which and why."""


def alive(pid: int) -> bool:
    # Under gVisor, orphans stay zombies for ~2 s: count zombies as gone.
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((ln for ln in status.splitlines() if ln.startswith("State:")), "")
    return not any(s in state for s in ("(zombie)", "(dead)"))


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def spawn(
    cmd: Sequence[str], *, log: Path, pidfile: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)


def stop_pidfile(pidfile: Path) -> bool:
    pid = read_pid(pidfile)
    if pid is not None and alive(pid):
        stop_pid(pid)
    existed = pidfile.exists()
    pidfile.unlink(missing_ok=True)
    return existed


def stop_on_signals() -> threading.Event:
    """An event that SIGINT/SIGTERM set (instead of ending the process at once)."""
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    return done


def wait_for_stop(done: threading.Event) -> None:
    """Block the main thread until `done` is set.

    Waits in short slices: a process-directed signal may be delivered to another thread, and CPython then runs the
    handler only when the main thread next executes bytecode; an untimed wait would never wake up to do so.
    """
    while not done.wait(0.25):
        pass


def http_ok(url: str, **kw: object) -> tuple[bool, str]:
    """A check for `wait_until`: the URL answers 200."""
    try:
        r = httpx.get(url, timeout=2.0, **kw)  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        return False, f"{url}: {type(exc).__name__}"
    return (r.status_code == 200, f"{url}: HTTP {r.status_code}")


def wait_until(
    check: Callable[[], tuple[bool, str]], timeout: float, what: str, gone: Callable[[], str | None] | None = None
) -> None:
    """Poll `check` until it passes; `gone` returns why the process died, to fail fast instead of waiting."""
    deadline = time.monotonic() + timeout
    reason = "not checked"
    while time.monotonic() < deadline:
        ok, reason = check()
        if ok:
            return
        if gone is not None and (why := gone()):
            raise ServiceError(f"{what}: exited during start-up ({why})")
        time.sleep(0.1)
    raise ServiceError(f"{what}: not ready after {timeout:.0f}s ({reason})")


def run(
    cmd: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    try:
        res = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=timeout,
        )
    except FileNotFoundError:
        raise ServiceError(f"{cmd[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise ServiceError(f"{' '.join(cmd)}: timed out after {timeout:.0f}s") from None
    if check and res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise ServiceError(f"{' '.join(cmd)} exited {res.returncode}: {' / '.join(tail)}")
    return res


def missing_debs(packages: Sequence[str]) -> list[str]:
    out = []
    for p in packages:
        res = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        if "ok installed" not in res.stdout:
            out.append(p)
    return out


_APT_UPDATED = False


def apt_install(packages: Sequence[str], log: Path) -> None:
    """Install missing Debian packages without recommends and without starting their daemons."""
    global _APT_UPDATED
    missing = missing_debs(packages)
    if not missing:
        return
    if os.geteuid() != 0:
        raise ServiceError(f"Debian packages missing and not root: {' '.join(missing)} (apt-get install them)")
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        made_policy = True
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        if not _APT_UPDATED:
            run(["apt-get", "update", "-qq"], env=env, timeout=300)
            _APT_UPDATED = True
        res = run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env, timeout=600, check=False
        )
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(res.stdout + res.stderr)
        if res.returncode != 0:
            raise ServiceError(f"apt-get install {' '.join(missing)} failed; see {log}")
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)


def which(name: str) -> str | None:
    return shutil.which(name)
