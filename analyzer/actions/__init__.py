"""Safe Slurm actions after a diagnosis: drain or resume a node, requeue a job, in modes off | dry-run | approve |
auto, behind a breaker (a share of the cluster, a count per window, never a partition's last node), every proposal,
decision and refusal in the store's actions log.

  plans.yaml  which causes call for which actions, with where the advice comes from (data)
  policy.py   the breaker and the modes: pure decisions over a view of the cluster
  slurm.py    Slurm's own CLI: `sinfo --json` for the view, `scontrol update` / `scontrol requeue` to act
  service.py  proposes, records, approves and runs actions against the store
"""
