"""`hpcmind services up|down|status`: idempotent bring-up of the local services."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from ..errors import UsageError
from ..settings import Settings
from .catalog import DEPENDS, SERVICES, Postgres, Service
from .proc import ServiceError, wait_until


class ServiceManager:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services: dict[str, Service] = {cls.name: cls(settings) for cls in SERVICES}

    def resolve(self, names: Sequence[str]) -> list[str]:
        unknown = [n for n in names if n not in self.services]
        if unknown:
            raise UsageError(f"services: unknown service {unknown[0]!r} (known: {', '.join(self.services)})")
        wanted = list(names) or list(self.services)
        for n in list(wanted):
            wanted += [d for d in DEPENDS.get(n, ()) if d not in wanted]
        return [n for n in self.services if n in wanted]  # catalogue order respects dependencies

    def up(self, names: Sequence[str]) -> int:
        self.settings.services.run_dir.mkdir(parents=True, exist_ok=True)
        failed = 0
        for n in names:
            svc, t0 = self.services[n], time.monotonic()
            try:
                ok, _ = svc.check() if svc.running() else (False, "")
                if not ok:
                    svc.stop()  # leftovers of an earlier run would hold the ports
                    svc.install()
                    svc.start()
                    wait_until(svc.check, self.settings.services.ready_timeout_s, n, svc.gone)
                if isinstance(svc, Postgres):
                    svc.ensure_database()
                print(f"{n:13} up     {time.monotonic() - t0:5.1f}s  {svc.check()[1]}")
            except ServiceError as exc:
                failed += 1
                print(f"{n:13} FAILED {time.monotonic() - t0:5.1f}s  {exc}", file=sys.stderr)
        return 1 if failed else 0

    def down(self, names: Sequence[str]) -> int:
        for n in reversed(names):
            svc = self.services[n]
            was = svc.running()
            svc.stop()
            print(f"{n:13} down   {'(stopped ' + ', '.join(was) + ')' if was else '(was not running)'}")
        return 0

    def status(self, names: Sequence[str]) -> int:
        bad = 0
        for n in names:
            svc = self.services[n]
            running = svc.running()
            missing = [p for p in svc.procs() if p not in running]
            if not running:  # never started (or stopped): not a fault, and not healthy either
                print(f"{n:13} {'stopped':9} start it with `hpcmind services up {n}`")
                continue
            if missing and not (n == "slurm" and missing == ["munged"]):
                ok, reason = False, f"not running: {', '.join(missing)}"
            else:
                try:
                    ok, reason = svc.check()
                except ServiceError as exc:
                    ok, reason = False, str(exc)
            bad += not ok
            print(f"{n:13} {'healthy' if ok else 'UNHEALTHY':9} {reason}")
        return 1 if bad else 0
