"""Leases: which analyzer replica does a piece of shared work, until when.

Several replicas on one store (PostgreSQL) each receive every alert. An incident is diagnosed under its lease, the
outboxes are drained by the holder of the `outbox` lease (one writer keeps Grafana and the webhooks in order), and
the `sweeper` picks up what a replica that died left behind. A lease expires on its own, so a `kill -9`ed replica
holds nothing for long; a replica restarted under the same id (host and port) takes its leases back at once.
"""

from __future__ import annotations

import socket
from datetime import timedelta

from sqlalchemy import and_, delete, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .store import Store, leases, now


def replica_id(configured: str, port: int) -> str:
    return configured or f"{socket.gethostname()}:{port}"


def acquire(store: Store, name: str, owner: str, ttl_s: float) -> bool:
    """Take or renew `name` for `ttl_s` seconds: True if `owner` holds it now (it was free, expired, or its own)."""
    t = now()
    until = t + timedelta(seconds=ttl_s)
    with store.tx() as c:
        taken = c.execute(
            update(leases)
            .where(and_(leases.c.name == name, or_(leases.c.owner == owner, leases.c.until < t)))
            .values(owner=owner, until=until)
        ).rowcount
        if taken:
            return True
        ins = (pg_insert if c.dialect.name == "postgresql" else sqlite_insert)(leases).values(
            name=name, owner=owner, until=until
        )
        return bool(c.execute(ins.on_conflict_do_nothing(index_elements=["name"])).rowcount)


def release(store: Store, name: str, owner: str) -> None:
    with store.tx() as c:
        c.execute(delete(leases).where(and_(leases.c.name == name, leases.c.owner == owner)))
