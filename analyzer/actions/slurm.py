"""Slurm's own CLI: the cluster view from `sinfo --json`, changes through `scontrol`. Slurm 22.05's slurmrestd
(openapi v0.0.38) cannot update nodes or requeue, so the CLI is the one path that works on every supported Slurm."""

from __future__ import annotations

import json
import os
import subprocess

from hpcmind.settings import ActionsSettings

from .policy import Node


class SlurmError(RuntimeError):
    """A Slurm command failed; the message carries its stderr."""


class SlurmControl:
    def __init__(self, s: ActionsSettings) -> None:
        self.s = s
        self.env = {**os.environ, **({"SLURM_CONF": s.slurm_conf} if s.slurm_conf else {})}

    def _run(self, argv: list[str]) -> str:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=self.s.timeout_s)
        except FileNotFoundError:
            raise SlurmError(f"{argv[0]}: not found (HPCMIND_ACTIONS__SCONTROL)") from None
        except subprocess.TimeoutExpired:
            raise SlurmError(f"{' '.join(argv[:2])}: no answer in {self.s.timeout_s:g}s") from None
        if r.returncode != 0:
            raise SlurmError(f"{' '.join(argv[:3])}: {(r.stderr or r.stdout).strip() or f'exit {r.returncode}'}")
        return r.stdout

    def nodes(self) -> dict[str, Node]:
        sinfo = os.path.join(os.path.dirname(self.s.scontrol), "sinfo") if os.sep in self.s.scontrol else "sinfo"
        data = json.loads(self._run([sinfo, "--json"]))
        out: dict[str, Node] = {}
        for n in data.get("nodes", []):
            states = {str(n.get("state", "")).upper(), *(str(f).upper() for f in n.get("state_flags") or [])}
            out[n["name"]] = Node(
                n["name"], frozenset(states - {""}), tuple(n.get("partitions") or ()), n.get("reason") or ""
            )
        return out

    def drain(self, node: str, reason: str) -> None:
        self._run([self.s.scontrol, "update", f"NodeName={node}", "State=DRAIN", f"Reason={reason}"])

    def resume(self, node: str) -> None:
        self._run([self.s.scontrol, "update", f"NodeName={node}", "State=RESUME"])

    def requeue(self, job: str) -> None:
        if not job.isdigit():
            raise SlurmError(f"requeue: {job!r} is not a Slurm job id")
        self._run([self.s.scontrol, "requeue", job])
