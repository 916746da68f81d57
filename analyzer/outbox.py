"""The operations every outbox table shares (Grafana annotations, incident events): what is due, retry later with
backoff, done. A table here has `id`, `done`, `next_at`, `attempts` and `last_error`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Table, and_, func, select, update

from .store import Store, now


def pending(store: Store, table: Table) -> int:
    with store.tx() as c:
        return int(c.execute(select(func.count()).select_from(table).where(table.c.done.is_(False))).scalar() or 0)


def due(store: Store, table: Table, limit: int) -> list[Any]:
    """The entries whose time has come, oldest first (delivery keeps their order)."""
    with store.tx() as c:
        return list(
            c.execute(
                select(table)
                .where(and_(table.c.done.is_(False), table.c.next_at <= now()))
                .order_by(table.c.id)
                .limit(limit)
            ).all()
        )


def retry_later(store: Store, table: Table, row: Any, err: str, max_backoff: float) -> None:
    """1 s, 2 s, 4 s ... up to `max_backoff` after each failed attempt."""
    with store.tx() as c:
        c.execute(
            update(table)
            .where(table.c.id == row.id)
            .values(
                attempts=row.attempts + 1,
                next_at=now() + timedelta(seconds=min(max_backoff, 2.0**row.attempts)),
                last_error=err[:500],
            )
        )


def finish(store: Store, table: Table, oid: int, err: str | None) -> None:
    with store.tx() as c:
        c.execute(update(table).where(table.c.id == oid).values(done=True, last_error=err))
