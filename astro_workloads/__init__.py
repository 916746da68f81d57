"""astro_workloads package (see its issue; not built yet)."""
