"""Reading a source store's change logs: positions, pages of changes, what is pending.

A *position* says how much of one log a replica has applied:

* SQLite: ``{"seq": n}`` -- writers are serialised, so ``seq`` is commit order and
  every entry up to ``n`` is applied.
* PostgreSQL: ``{"prev": snapshot, "cur": snapshot, "seq": n}`` -- sequence numbers
  are taken before commit, so a later commit can carry a lower ``seq``. Positions are
  snapshots instead (``pg_current_snapshot()``): a pass applies every entry visible in
  its snapshot ``cur`` and not in the previous pass's ``prev`` (``pg_visible_in_snapshot``
  on the entry's transaction id), in ``seq`` order, ``seq`` marking progress inside that
  window; then ``prev`` becomes ``cur``. A long transaction elsewhere never stalls the
  others: its entries simply arrive in the pass after its commit.

Application is state-based (the replica takes the source row as of the reading
snapshot, or deletes it when the source has none), so applying an entry twice or a
later state early is harmless and the replica converges to the source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, func, or_, select, text

from cryptotrading.migrations.capture import LOG_TABLES, SERIES_LOG
from cryptotrading.models import MARKET_LINEAGE, metadata


@dataclass
class Position:
    """How far one change log has been applied (see the module docstring)."""

    seq: int = 0
    prev: str | None = None
    cur: str | None = None

    def as_json(self) -> dict[str, Any]:
        if self.prev is None:
            return {"seq": self.seq}
        return {"seq": self.seq, "prev": self.prev, "cur": self.cur}

    @classmethod
    def from_json(cls, value: Any) -> Position:
        if not isinstance(value, dict):
            return cls()
        prev, cur = value.get("prev"), value.get("cur")
        return cls(
            int(value.get("seq", 0)),
            prev if isinstance(prev, str) else None,
            cur if isinstance(cur, str) else None,
        )


@dataclass
class Cursor:
    """A replica's positions in the logs of one lineage's source."""

    source: str
    logs: dict[str, Position] = field(default_factory=dict)

    def encode(self) -> str:
        return json.dumps({name: p.as_json() for name, p in self.logs.items()}, sort_keys=True)

    @classmethod
    def decode(cls, source: str, text: str) -> Cursor:
        try:
            document = json.loads(text)
        except ValueError:
            document = {}
        if not isinstance(document, dict):
            document = {}
        return cls(source, {name: Position.from_json(v) for name, v in document.items()})


def log_names(lineage: str) -> list[str]:
    """The change logs a lineage's source keeps."""
    names = [LOG_TABLES[lineage]]
    if lineage == MARKET_LINEAGE:
        names.append(SERIES_LOG)
    return names


def log_table(name: str) -> Table:
    return metadata.tables[name]


def snapshot(connection: Connection) -> str | None:
    """PostgreSQL: the reading transaction's snapshot as text; SQLite: None."""
    if connection.dialect.name != "postgresql":
        return None
    return str(connection.exec_driver_sql("SELECT pg_current_snapshot()::text").scalar_one())


def xmin(text_snapshot: str) -> int:
    return int(text_snapshot.split(":", 1)[0])


def _visible(table: Table, name: str, value: str, *, negate: bool = False) -> Any:
    """Whether an entry's transaction is visible in (had committed before) a snapshot."""
    return text(
        ("NOT " if negate else "")
        + f"pg_visible_in_snapshot({table.name}.txid::text::xid8, CAST(:{name} AS pg_snapshot))"
    ).bindparams(bindparam(name, value))


def start_position(connection: Connection, name: str) -> Position:
    """The position that an initial copy read in *connection*'s snapshot stands for."""
    current = snapshot(connection)
    if current is not None:
        return Position(0, current, None)
    last = connection.execute(select(func.max(log_table(name).c.seq))).scalar()
    return Position(int(last or 0))


def open_window(connection: Connection, position: Position) -> bool:
    """PostgreSQL: give *position* a window to read when it has none; False when the
    snapshot has not moved since the last window (nothing can be read)."""
    if position.prev is None or position.cur is not None:
        return True
    current = snapshot(connection)
    if current is None or current == position.prev:
        return False
    position.cur, position.seq = current, 0
    return True


def _unapplied(table: Table, position: Position) -> Any:
    if position.prev is None:
        return table.c.seq > position.seq
    conditions = [
        table.c.txid >= xmin(position.prev),
        _visible(table, "prev_snap", position.prev, negate=True),
    ]
    if position.cur is not None:
        conditions.append(
            or_(_visible(table, "cur_snap", position.cur, negate=True), table.c.seq > position.seq)
        )
    return and_(*conditions)


def page(connection: Connection, name: str, position: Position, limit: int) -> list[Any]:
    """The next entries to apply after *position*, in ``seq`` order (at most *limit*)."""
    table = log_table(name)
    query = select(table).where(table.c.seq > position.seq).order_by(table.c.seq).limit(limit)
    if position.prev is not None and position.cur is not None:
        query = query.where(
            table.c.txid >= xmin(position.prev),
            _visible(table, "cur_snap", position.cur),
            _visible(table, "prev_snap", position.prev, negate=True),
        )
    return list(connection.execute(query).mappings())


def advance(position: Position, entries: list[Any]) -> bool:
    """Move *position* past *entries* (a page about to be applied); an empty page
    closes a PostgreSQL window. False when the position did not move."""
    if entries:
        position.seq = int(entries[-1]["seq"])
        return True
    if position.prev is not None and position.cur is not None:
        position.prev, position.cur, position.seq = position.cur, None, 0
        return True
    return False


def pending(connection: Connection, name: str, position: Position) -> list[tuple[str, int, Any]]:
    """(table, entries, oldest changed_at in epoch ms) of the entries not yet applied."""
    table = log_table(name)
    label = table.c.table_name if name != SERIES_LOG else None
    columns: list[Any] = [func.count(), func.min(table.c.changed_at)]
    query = select(*([label] if label is not None else []), *columns).where(
        _unapplied(table, position)
    )
    if label is not None:
        query = query.group_by(label)
        return [(str(t), int(n), oldest) for t, n, oldest in connection.execute(query)]
    count, oldest = connection.execute(query).one()
    return [("time_series", int(count), oldest)] if count else []


def trim(connection: Connection, name: str, position: Position) -> int:
    """Delete the entries of log *name* that *position* has applied; returns how many."""
    table = log_table(name)
    if position.prev is None:
        condition = table.c.seq <= position.seq
    else:
        condition = table.c.txid < xmin(position.prev)
    return int(connection.execute(table.delete().where(condition)).rowcount or 0)
