"""Static cluster layout built from a scenario: nodes, GPUs, HCAs, filesystems and their label sets."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import numpy as np

from .scenario import GPU_MODELS, ClusterSpec

# Bus ids of the 8 SXM GPUs of an HGX H100 board (a DGX-like layout).
_HGX_BUS = ["18", "2a", "3a", "5d", "9a", "ab", "ba", "db"]
_HCA_PCI = ["0c", "1f", "40", "55", "8c", "a1", "c0", "d5"]


def labels_json(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


@dataclass
class Topology:
    node_names: list[str]
    node_partition: np.ndarray  # int per node
    partition_names: list[str]
    node_cpus: np.ndarray
    node_mem_bytes: np.ndarray
    node_leaf: np.ndarray  # leaf switch per node
    gpus_per_node: np.ndarray
    # GPUs, flattened
    gpu_node: np.ndarray
    gpu_index: np.ndarray
    gpu_model_key: list[str]
    gpu_fb_total: np.ndarray  # MiB
    gpu_power_max: np.ndarray
    gpu_power_idle: np.ndarray
    gpu_pci: list[str]  # "PCI:0000:18:00" as the driver prints it
    gpu_bus_id: list[str]  # dcgm-exporter's "00000000:18:00.0"
    gpu_uuid: list[str]
    gpu_labels: list[dict[str, str]]
    gpu_first: np.ndarray  # index of each node's first GPU
    # InfiniBand HCAs, flattened
    hca_node: np.ndarray
    hca_device: list[str]
    hca_pci: list[str]
    hca_labels: list[dict[str, str]]
    # filesystems, per node x fs
    fs_specs: list[tuple[str, str, str, float, bool, float]]
    node_labels: list[dict[str, str]]

    @property
    def n_nodes(self) -> int:
        return len(self.node_names)

    @property
    def n_gpus(self) -> int:
        return len(self.gpu_node)

    def node_id(self, name: str) -> int:
        return self.node_names.index(name)

    def gpus_of(self, node: int) -> np.ndarray:
        start = int(self.gpu_first[node])
        return np.arange(start, start + int(self.gpus_per_node[node]))


def build_topology(spec: ClusterSpec, seed: int) -> Topology:
    rng = np.random.default_rng(seed + 1)
    names, part, cpus, mem, leaf, gpn = [], [], [], [], [], []
    for pi, p in enumerate(spec.partitions):
        for i in range(p.nodes):
            names.append(f"{p.node_prefix}{p.first_index + i:0{p.name_digits}d}")
            part.append(pi)
            cpus.append(p.cpus)
            mem.append(p.memory_gb * 2**30)
            leaf.append(i // p.nodes_per_leaf + 100 * pi)
            gpn.append(p.gpus_per_node)
    if len(set(names)) != len(names):
        raise ValueError("cluster: node names collide across partitions")
    gpn_arr = np.array(gpn, dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(gpn_arr)[:-1]]).astype(np.int64)
    gpu_node = np.repeat(np.arange(len(names)), gpn_arr)
    gpu_index = np.concatenate([np.arange(k) for k in gpn_arr]) if len(gpn_arr) else np.zeros(0, np.int64)
    model_key: list[str] = []
    fb, pmax, pidle, pci, bus, uid, glabels = [], [], [], [], [], [], []
    for g, (n, i) in enumerate(zip(gpu_node.tolist(), gpu_index.tolist(), strict=True)):
        key = spec.partitions[part[n]].gpu_model
        nvml, fbm, pm, pi_ = GPU_MODELS[key]
        b = _HGX_BUS[i % len(_HGX_BUS)] if i < len(_HGX_BUS) else f"{0xE0 + i:02x}"
        u = "GPU-" + str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | g))
        model_key.append(key)
        fb.append(fbm)
        pmax.append(pm)
        pidle.append(pi_)
        pci.append(f"PCI:0000:{b}:00")
        bus.append(f"00000000:{b.upper()}:00.0")
        uid.append(u)
        glabels.append(
            {
                "gpu": str(i),
                "UUID": u,
                "pci_bus_id": f"00000000:{b.upper()}:00.0",
                "device": f"nvidia{i}",
                "modelName": nvml,
                "Hostname": names[n],
                "DCGM_FI_DRIVER_VERSION": spec.driver_version,
            }
        )
    hca_node, hca_dev, hca_pci, hlabels = [], [], [], []
    for n, name in enumerate(names):
        for h in range(spec.partitions[part[n]].ib_hcas):
            hca_node.append(n)
            hca_dev.append(f"mlx5_{h}")
            hca_pci.append(f"0000:{_HCA_PCI[h % len(_HCA_PCI)]}:00.0")
            hlabels.append({"instance": f"{name}:9100", "device": f"mlx5_{h}", "port": "1"})
    fs = [(f.mountpoint, f.fstype, f.device, f.size_tb * 1e12, f.shared, f.fill_fraction) for f in spec.filesystems]
    return Topology(
        node_names=names,
        node_partition=np.array(part),
        partition_names=[p.name for p in spec.partitions],
        node_cpus=np.array(cpus, dtype=np.float64),
        node_mem_bytes=np.array(mem, dtype=np.float64),
        node_leaf=np.array(leaf),
        gpus_per_node=gpn_arr,
        gpu_node=gpu_node,
        gpu_index=gpu_index,
        gpu_model_key=model_key,
        gpu_fb_total=np.array(fb, dtype=np.float64),
        gpu_power_max=np.array(pmax),
        gpu_power_idle=np.array(pidle),
        gpu_pci=pci,
        gpu_bus_id=bus,
        gpu_uuid=uid,
        gpu_labels=glabels,
        gpu_first=first,
        hca_node=np.array(hca_node, dtype=np.int64),
        hca_device=hca_dev,
        hca_pci=hca_pci,
        hca_labels=hlabels,
        fs_specs=fs,
        node_labels=[{"instance": f"{n}:9100"} for n in names],
    )
