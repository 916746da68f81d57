"""The named PromQL query catalogue. Selectors accept both `Hostname` and `hostname` (dcgm-exporter renamed it)."""

from __future__ import annotations

import re
from dataclasses import dataclass


def _q(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True)
class Query:
    name: str
    scope: str  # node | job
    template: str  # $node, $node_re, $job are replaced with escaped label values

    def render(self, *, node: str | None = None, job: str | None = None) -> str:
        n = node or ""
        return (
            self.template.replace("$node_re", _q(re.escape(n))).replace("$node", _q(n)).replace("$job", _q(job or ""))
        )


def _dcgm(names: str) -> str:
    return f'{{__name__=~"{names}", Hostname="$node"}} or {{__name__=~"{names}", hostname="$node"}}'


QUERIES: tuple[Query, ...] = (
    Query(
        "gpu_activity",
        "node",
        _dcgm("DCGM_FI_DEV_GPU_UTIL|DCGM_FI_PROF_SM_ACTIVE|DCGM_FI_DEV_FB_USED|DCGM_FI_DEV_FB_FREE"),
    ),
    Query(
        "gpu_health",
        "node",
        _dcgm(
            "DCGM_FI_DEV_XID_ERRORS|DCGM_FI_DEV_ECC_DBE_VOL_TOTAL|DCGM_FI_DEV_UNCORRECTABLE_"
            "REMAPPED_ROWS|DCGM_FI_DEV_ROW_REMAP_FAILURE|DCGM_FI_DEV_NVLINK_.*_ERROR_COUNT_TOTAL"
        ),
    ),
    Query(
        "gpu_thermal",
        "node",
        _dcgm("DCGM_FI_DEV_GPU_TEMP|DCGM_FI_DEV_CLOCK_THROTTLE_REASONS|DCGM_FI_DEV_THERMAL_VIOLATION"),
    ),
    Query(
        "host",
        "node",
        '{__name__=~"node_memory_MemAvailable_bytes|node_memory_MemTotal_bytes|node_vmstat_oom_kill|'
        'node_pressure_.*|node_filesystem_avail_bytes", instance=~"$node_re(:[0-9]+)?"}',
    ),
    Query(
        "infiniband",
        "node",
        '{__name__=~"node_infiniband_(state_id|physical_state_id|link_downed_total|'
        'symbol_error_total|link_error_recovery_total)", instance=~"$node_re(:[0-9]+)?"}',
    ),
    Query("node_up", "node", 'up{instance=~"$node_re(:[0-9]+)?"}'),
    Query(
        "job_gpus",
        "job",
        '{__name__=~"DCGM_FI_DEV_GPU_UTIL|DCGM_FI_PROF_SM_ACTIVE|DCGM_FI_DEV_FB_USED|'
        'DCGM_FI_DEV_FB_FREE", hpc_job="$job"}',
    ),
    Query("job_training", "job", '{__name__=~"astro_train_.*", job_id="$job"}'),
    Query(
        "job_inference",
        "job",
        '{__name__=~"vllm:(kv_cache_usage_perc|gpu_cache_usage_perc|num_requests_waiting|'
        'num_preemptions_total)", job_id="$job"}',
    ),
    Query("job_record", "job", 'hpcmind_slurm_job_info{job_id="$job"}'),
)
