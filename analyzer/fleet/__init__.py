"""Fleet memory: every diagnosed incident is an event on its GPU and node; correlation rules (data, with their
sources) read a unit's history when a new incident is diagnosed, and escalate the remediation, raise confidence or
re-attribute the cause (the third "application" Xid on one GPU under three different jobs is the GPU).

  rules.yaml  the correlation rules, each citing the guidance it follows
  history.py  events, rules and what they conclude: pure
  store.py    the events table's reads and writes
"""
