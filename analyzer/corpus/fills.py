"""Realistic values for the catalogue's placeholders, drawn from one seeded `random.Random` per bundle.

A bundle keeps one host, job, rank set and GPU set, so its lines agree with each other the way a real log does.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

from .catalog import PLACEHOLDER

HOST_STYLES = (
    "gpu-a{:03d}",
    "node{:02d}",
    "dgx{:03d}",
    "hgx-{:02d}",
    "gn{:03d}",
    "nid{:06d}",
    "compute-gpu-{}",
    "ml-h100-{:02d}",
    "worker-{}",
    "ip-10-0-{}-12",
    "c{:03d}",
    "r{:02d}n{:02d}",
)
IB_STATUS = (
    "IBV_WC_RETRY_EXC_ERR(12)",
    "IBV_WC_REM_ACCESS_ERR(10)",
    "IBV_WC_LOC_PROT_ERR(4)",
    "IBV_WC_WR_FLUSH_ERR(5)",
    "IBV_WC_RNR_RETRY_EXC_ERR(13)",
    "IBV_WC_REM_OP_ERR(11)",
)
IB_EVENTS = ("port error", "local catastrophic error", "QP fatal error", "CQ error", "LID change", "port active")
OPS = (
    "ALLREDUCE",
    "ALLGATHER",
    "BROADCAST",
    "REDUCE_SCATTER",
    "_ALLGATHER_BASE",
    "BARRIER",
    "SEND",
    "RECV",
    "COALESCED",
)
PYFILES = (
    "/opt/conda/lib/python3.10/site-packages/torch/nn/modules/module.py",
    "/workspace/train.py",
    "/usr/local/lib/python3.11/site-packages/transformers/trainer.py",
    "/home/user/project/model.py",
    "/opt/conda/lib/python3.10/site-packages/torch/distributed/distributed_c10d.py",
    "/usr/lib/python3/dist-packages/deepspeed/runtime/engine.py",
    "/app/src/data/loader.py",
)
PYFUNCS = ("forward", "_call_impl", "train_step", "main", "backward", "all_reduce", "wrapper", "__getitem__", "step")
SXIDS = ("12028", "20034", "22013", "24007", "11004", "19084")
NETS = ("IB", "Socket", "AWS Libfabric", "IBext_v8")
IFACES = ("ib0", "eth0", "ens5", "bond0", "enp65s0f0")
DEVS = ("sda1", "nvme0n1p1", "md0", "dm-0", "nvme1n1", "vdb")
PATHS = (
    "/scratch/{u}/ckpt/step_{n}.pt",
    "/home/{u}/.cache/huggingface/hub/models--org--model/blobs/{h}",
    "/lustre/proj/{u}/outputs/model.safetensors",
    "/gpfs/data/{u}/runs/log.txt",
    "/tmp/torchinductor_{u}/{h}.so",
)


def _hexdigits(r: random.Random, n: int) -> str:
    return "".join(r.choice("0123456789abcdef") for _ in range(n))


@dataclass
class Fill:
    rng: random.Random
    host_style: str = ""
    hosts: list[str] = field(default_factory=list)
    job: str = ""
    world: int = 8
    day: tuple[int, int] = (1, 1)
    clock: float = 0.0

    @classmethod
    def new(cls, rng: random.Random) -> Fill:
        f = cls(rng)
        f.host_style = rng.choice(HOST_STYLES)
        f.hosts = [f._host() for _ in range(rng.randint(1, 4))]
        f.job = str(rng.randint(1000, 99999999))
        f.world = rng.choice((2, 4, 8, 16, 32, 64, 128))
        f.day = (rng.randint(1, 12), rng.randint(1, 28))
        f.clock = rng.uniform(0, 86000)
        return f

    def _host(self) -> str:
        n = self.host_style.count("{")
        return self.host_style.format(*[self.rng.randint(1, 250) for _ in range(n)])

    def tick(self) -> None:
        self.clock += self.rng.expovariate(1 / 3.0)

    def hms(self) -> str:
        c = int(self.clock) % 86400
        return f"{c // 3600:02d}:{c // 60 % 60:02d}:{c % 60:02d}"

    def value(self, key: str) -> str:  # one branch per placeholder keeps the vocabulary in one place
        r = self.rng
        if key == "host":
            return r.choice(self.hosts)
        if key == "jobid":
            return self.job
        if key == "rank":
            return str(r.randrange(self.world))
        if key == "world":
            return str(self.world)
        if key == "gpu":
            return str(r.randrange(8))
        if key in ("pid",):
            return str(r.randint(300, 4_000_000))
        if key == "ip":
            return f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
        if key == "port":
            return str(r.choice((29500, 29400, 12355, 6000, r.randint(20000, 65000))))
        if key == "small":
            return str(r.randint(0, 9))
        if key == "int":
            return str(r.randint(10, 99999))
        if key == "seq":
            return str(r.randint(1, 200000))
        if key == "hex":
            return "0x" + _hexdigits(r, r.choice((8, 12, 16)))
        if key == "uuid":
            h = _hexdigits(r, 32)
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        if key == "pci":
            return f"0000:{r.choice((0x1B, 0x3B, 0x5D, 0x9B, 0xB3, 0xDB, 0x18, 0xC1)):02x}:00"
        if key == "pci2":
            return f"{r.choice((0x05, 0x06, 0x86, 0x87)):02x}:00"
        if key == "bdf":
            return f"0000:{r.choice((0x1B, 0x3B, 0x5D, 0x9B, 0xB3, 0xDB)):02x}:00.0"
        if key == "wcstatus":
            return r.choice(IB_STATUS)
        if key == "ibevent":
            return r.choice(IB_EVENTS[:4])
        if key == "ibdev":
            return f"mlx5_{r.randint(0, 11)}"
        if key == "ibport":
            return "1"
        if key == "iface":
            return r.choice(IFACES)
        if key == "ncclnet":
            return r.choice(NETS)
        if key == "op":
            return r.choice(OPS)
        if key == "timeoutms":
            return str(r.choice((600000, 1800000, 600000, 300000, 3600000)))  # configured values are round
        if key == "secs":
            return str(r.choice((30, 60, 300, 600, 900, 1800)))
        if key == "hungsecs":
            return str(r.choice((120, 122, 241, 362, 483, 604)))
        if key == "ms":
            return str(r.choice((30000, 60000, 300000, 1800000)))
        if key == "gib":
            return f"{r.uniform(0.02, 79.5):.2f}"
        if key == "mib":
            return f"{r.uniform(1, 900):.2f}"
        if key == "float":
            return f"{r.uniform(0.01, 900):.{r.randint(1, 4)}f}"
        if key == "tput":  # a serving engine's tokens/s while it makes progress
            return f"{r.uniform(12, 4000):.1f}"
        if key == "pct":
            return f"{r.uniform(0, 75):.1f}"
        if key == "hipct":
            return f"{r.uniform(96, 100):.1f}"
        if key == "bigq":
            return str(r.randint(60, 5000))
        if key == "lossscale":
            return str(2.0 ** r.randint(-12, 16))
        if key == "lr":
            return f"{r.uniform(1e-6, 3e-4):.3e}"
        if key == "mmdd":
            return f"{self.day[0]:02d}{self.day[1]:02d}"
        if key == "hms":
            return self.hms()
        if key == "isotime":
            return f"2026-{self.day[0]:02d}-{self.day[1]:02d}T{self.hms()}"
        if key == "asctime":  # Python logging's default %(asctime)s
            return f"2026-{self.day[0]:02d}-{self.day[1]:02d} {self.hms()},{r.randint(0, 999):03d}"
        if key == "fmtime":
            return f"Mar {self.day[1]:02d} 2026 {self.hms()}"
        if key == "kts":
            return r.choice(
                (
                    f"[{self.clock + 1e5:.6f}]",
                    f"kernel: [{self.clock:.6f}]",
                    f"{self.hms()} {r.choice(self.hosts)} kernel:",
                    f"[Mon Mar {self.day[1]} {self.hms()} 2026]",
                )
            )
        if key == "dev":
            return r.choice(DEVS)
        if key == "path":
            u = "".join(r.choice(string.ascii_lowercase) for _ in range(r.randint(3, 8)))
            return r.choice(PATHS).format(u=u, n=r.randint(100, 90000), h=_hexdigits(r, 16))
        if key == "pyfile":
            return r.choice(PYFILES)
        if key == "pyfunc":
            return r.choice(PYFUNCS)
        if key == "sxid":
            return r.choice(SXIDS)
        if key == "coolt":
            return str(r.randint(28, 68))
        if key == "hott":
            return str(r.randint(87, 97))
        if key == "dltimes":  # most of the step is spent waiting for data
            step = r.uniform(0.8, 9.0)
            return f"time: {step:.4f}  data_time: {step * r.uniform(0.6, 0.97):.4f}"
        if key == "oktimes":
            step = r.uniform(0.15, 2.0)
            return f"time: {step:.4f}  data_time: {step * r.uniform(0.001, 0.05):.4f}"
        if key == "dlpct":
            return f"{r.uniform(55, 96):.1f}"
        raise KeyError(f"no filler for placeholder {{{key}}}")

    def render(self, text: str) -> str:
        self.tick()
        return PLACEHOLDER.sub(lambda m: self.value(m.group(1)), text)
