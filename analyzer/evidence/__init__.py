"""Evidence gathering: named PromQL queries, the log window, the Slurm job record."""
