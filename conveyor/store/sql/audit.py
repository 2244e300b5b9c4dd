"""The audit log: who changed what, when and from where, hash-chained so tampering shows.

Each record stores the SHA-256 of its own canonical encoding (``hash``) and the hash of
the record before it (``prev_hash``); sequence numbers run 1, 2, 3… without gaps. Editing
a record breaks its hash, deleting one leaves a gap or a broken link, and moving one
changes the sequence number its hash was computed with, so :meth:`AuditLog.verify` names
the first bad record. What the chain cannot show is a rewrite of the whole tail, or a tail
cut off; pin a head (``verify`` reports it) somewhere else and pass it back to catch those.

The canonical encoding is a record's JSON object (:meth:`AuditRecord.to_json`) without
``hash``, keys sorted, no whitespace, UTF-8 (``orjson`` with ``OPT_SORT_KEYS``), which is
exactly what ``export`` writes per line, so an archive can be checked outside Conveyor.

Two rules keep the chain whole:

* **One transaction with the change.** ``append(event, conn)`` joins the caller's write
  transaction, so a mutation and its record commit together or not at all.
* **One appender at a time.** A new record reads the head and links to it, so appends are
  serialized: SQLite writers hold the database lock from ``BEGIN IMMEDIATE``; on
  PostgreSQL the append takes a transaction-scoped advisory lock before reading the head.
  Should anything slip past either (a transaction opened on the wrong engine), the
  primary key on ``seq`` refuses the second record rather than letting the chain fork.

The API appends and reads, nothing else; the migration's triggers refuse UPDATE and DELETE
(see ``docs/governance.md`` for what that does and does not protect against).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson
from sqlalchemy import Connection, Row, func, insert, or_, select

from conveyor.errors import InvalidInput
from conveyor.store.actor import DEFAULT_WORKSPACE, current_workspace
from conveyor.store.base import now_ms
from conveyor.store.sql import schema as s

if TYPE_CHECKING:  # the store appends through this module, so no import at run time
    from conveyor.store.sql.store import SqlStore

#: ``prev_hash`` of the first record.
GENESIS_HASH = "0" * 64
#: Largest ``details`` accepted, encoded: the log records facts, not payloads.
MAX_DETAILS_BYTES = 8192
#: Key of the PostgreSQL advisory lock that serializes appends ("convaudi").
_PG_APPEND_LOCK = 0x636F6E7661756469
#: How far from its place a moved record is looked for when its hash fails.
_REORDER_WINDOW = 10_000
_REQUIRED = ("actor", "action", "resource_type", "resource_id")
#: The chain's head: the primary key's index answers it with one seek on both dialects.
_HEAD_SQL = f"SELECT seq, hash FROM {s.audit_log.name} ORDER BY seq DESC LIMIT 1"
#: Longest text per column, looked up once: every tracking write checks its record.
_LENGTHS = {c.name: c.type.length for c in s.audit_log.c if getattr(c.type, "length", None) is not None}
#: Per dialect: the compiled INSERT and its parameter order (see ``_insert_statement``).
_INSERTS: dict[str, tuple[str, tuple[str, ...] | None]] = {}
#: A pinned head as ``verify`` prints it: ``HASH@SEQ``.
_HEAD_TEXT = re.compile(r"(?P<hash>[0-9a-f]{64})@(?P<seq>[1-9][0-9]*)")


class ActorKind(StrEnum):
    USER = "user"
    SERVICE = "service"
    #: Conveyor itself: the scheduler, garbage collection, migrations.
    SYSTEM = "system"
    #: Authentication is off (the embedded single-user default).
    ANONYMOUS = "anonymous"


class BreakKind(StrEnum):
    """Why :meth:`AuditLog.verify` stopped at a record."""

    #: The record's contents no longer match its hash.
    EDITED = "edited"
    #: Records are missing: a gap in ``seq``, or a ``prev_hash`` that links to nothing.
    DELETED = "deleted"
    #: The record's hash matches its contents at another ``seq``: it was moved.
    REORDERED = "reordered"
    #: The log ends before the pinned head.
    TRUNCATED = "truncated"
    #: The chain is whole but the pinned head's hash differs: the chain was rebuilt.
    REWRITTEN = "rewritten"


@dataclass(frozen=True, kw_only=True)
class AuditEvent:
    """What a mutating operation reports; :meth:`AuditLog.append` turns it into a record.

    ``before`` and ``after`` are the resource's state as any JSON-able value (None: it did
    not exist). Only their digests are stored, so the log can prove a state without
    holding what may be confidential.
    """

    actor: str
    actor_kind: ActorKind | str
    #: ``<resource>.<verb>``: ``run.create``, ``registry.alias.set``…
    action: str
    resource_type: str
    resource_id: str
    #: The client's address, when the action came over the network.
    source: str | None = None
    workspace: str | None = None
    before: Any = None
    after: Any = None
    request_id: str | None = None
    #: A small JSON object (at most 8 KiB encoded): the reason given, the approval id…
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class AuditRecord:
    """One row of the audit log, as appended; ``hash`` covers every other field."""

    seq: int
    time: int
    actor: str
    actor_kind: str
    source: str | None
    workspace: str | None
    action: str
    resource_type: str
    resource_id: str
    before_digest: str | None
    after_digest: str | None
    request_id: str | None
    details: dict[str, Any] | None
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        """Every field, as ``export`` writes it and the hash encodes it (minus ``hash``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ChainBreak:
    """The first bad record: its ``seq`` (for deletions, the first missing one) and why."""

    seq: int
    kind: BreakKind
    reason: str


@dataclass(frozen=True)
class VerifyResult:
    """What :meth:`AuditLog.verify` found: the records checked and the head it reached."""

    records: int
    #: The last record checked (0 and :data:`GENESIS_HASH` for an empty log).
    head_seq: int
    head_hash: str
    broken: ChainBreak | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def to_json(self) -> dict[str, Any]:
        """``ok`` plus every field, as ``verify --json`` and the REST API answer."""
        return {"ok": self.ok, **asdict(self)}


def canonical_json(value: Any) -> bytes:
    """Keys sorted, no whitespace, UTF-8: one byte string per value, for hashing.

    Raises:
        InvalidInput: the value is not JSON-able.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise InvalidInput(f"Audit state and details must be JSON-able: {exc}") from None


def parse_head(text: str, name: str = "expect_head") -> tuple[int, str]:
    """``HASH@SEQ`` (as ``verify`` prints it) as ``(seq, hash)``; ``name`` is the option in errors."""
    match = _HEAD_TEXT.fullmatch(text.strip().lower())
    if match is None:
        raise InvalidInput(
            f"{name} {text!r} is not HASH@SEQ: 64 hex digits, '@', a sequence number "
            "(copy it from the output of `conveyor audit verify`)"
        )
    return int(match["seq"]), match["hash"]


def state_digest(state: Any) -> str:
    """Hex SHA-256 of a resource state's canonical JSON, for ``before``/``after`` digests.

    Anyone holding the same state (a registry export, a backup) can recompute it and
    prove which state the log refers to.
    """
    return hashlib.sha256(canonical_json(state)).hexdigest()


def record_hash(record: Mapping[str, Any]) -> str:
    """The hash a record must carry: SHA-256 over the canonical JSON of all fields but ``hash``."""
    return hashlib.sha256(canonical_json({k: v for k, v in record.items() if k != "hash"})).hexdigest()


class AuditLog:
    """Appends to, reads, verifies and exports the audit log of a SQL store."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    # -- writing ---------------------------------------------------------------------------

    def append(self, event: AuditEvent, conn: Connection | None = None) -> AuditRecord:
        """Append one record, in the caller's write transaction when ``conn`` is given.

        Pass the connection of the transaction that makes the change
        (``with store._write() as conn``) so the change and its record commit together;
        without one the record is committed on its own.

        Raises:
            InvalidInput: a required field is empty or a field is too long, an unknown
                ``actor_kind``, or state/details that are not JSON-able.
        """
        return self.append_many([event], conn)[0]

    def append_many(self, events: Sequence[AuditEvent], conn: Connection | None = None) -> list[AuditRecord]:
        """Append several records in order and in one transaction (a batch mutation's)."""
        if conn is not None:
            return append_events(conn, events)
        with self.store._write() as own:
            return append_events(own, events)

    # -- reading ---------------------------------------------------------------------------

    def read(
        self,
        since_seq: int = 0,
        limit: int = 100,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since_time: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditRecord]:
        """Records after ``since_seq`` that match every filter given, by ``seq``.

        ``since_seq`` is a cursor: pass the last ``seq`` you have to page forward.
        ``since_time`` (epoch milliseconds) skips records appended before it.
        ``newest_first`` returns the latest ``limit`` matches instead of the earliest.
        """
        if limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        if since_time is not None:
            since_seq = max(since_seq, self.seq_before(since_time))
        table = s.audit_log
        query = select(table).where(table.c.seq > since_seq, *_workspace_scope(table)).limit(limit)
        wanted = {
            "resource_type": resource_type,
            "resource_id": resource_id,
            "actor": actor,
            "action": action,
        }
        for name, value in wanted.items():
            if value is not None:
                query = query.where(table.c[name] == value)
        query = query.order_by(table.c.seq.desc() if newest_first else table.c.seq)
        with self.store._read() as conn:
            return [_to_record(row) for row in conn.execute(query)]

    def seq_before(self, time_ms: int) -> int:
        """The cursor for a time: the last ``seq`` appended before ``time_ms`` (0: none).

        Why no index on ``time``: records are numbered and stamped under the same write
        lock, so ``seq`` order is time order (unless the clock stepped back, when the
        answer is off by those records), and a binary search on the primary key finds the
        boundary in about log2(n) seeks without taxing every append with an index.
        """
        table = s.audit_log
        first_from = select(table.c.seq, table.c.time).order_by(table.c.seq).limit(1)
        with self.store._read() as conn:
            low, high = 0, conn.execute(select(func.max(table.c.seq))).scalar() or 0
            while low < high:  # records up to `low` are earlier; none after `high` is
                middle = (low + high + 1) // 2
                row = conn.execute(first_from.where(table.c.seq >= middle)).one()
                low, high = (row.seq, high) if row.time < time_ms else (low, middle - 1)
        return low

    def verify(self, batch: int = 5000, expect_head: tuple[int, str] | None = None) -> VerifyResult:
        """Recompute every hash and link, streaming the log ``batch`` records at a time.

        Args:
            batch: records per query; memory stays flat however long the log is.
            expect_head: ``(seq, hash)`` of a head recorded earlier (by ``verify`` or an
                export) and kept elsewhere. The record at that ``seq`` must still have that
                hash, which catches a cut-off tail and a chain rebuilt from scratch.

        Returns:
            The count and head reached, and the first bad record if there is one.
        """
        check = _ChainCheck()
        with self.store._read() as conn:
            for row in _stream(conn, batch):
                broken = check.feed(row)
                if broken is not None:
                    return check.result(broken)
                if expect_head is not None and row.seq == expect_head[0]:
                    broken = _check_pin(row, expect_head)
                    if broken is not None:
                        return check.result(broken)
        if expect_head is not None and check.seq < expect_head[0]:
            reason = f"the log ends at seq {check.seq}, but the pinned head is seq {expect_head[0]}"
            return check.result(ChainBreak(check.seq + 1, BreakKind.TRUNCATED, reason))
        return check.result(None)

    def export(self, out: BinaryIO, since_seq: int = 0, batch: int = 5000) -> int:
        """Write the records after ``since_seq`` as JSON Lines (one :meth:`AuditRecord.to_json`
        per line, keys sorted) for archiving outside the database; returns how many."""
        count = 0
        for line in self.export_lines(since_seq, batch):
            out.write(line)
            count += 1
        return count

    def export_lines(self, since_seq: int = 0, batch: int = 5000) -> Iterator[bytes]:
        """The lines :meth:`export` writes, one at a time, for streaming them over HTTP.

        The read connection stays open until the iterator is exhausted or closed.
        """
        with self.store._read() as conn:
            for row in _stream(conn, batch, since_seq):
                yield canonical_json(_to_record(row).to_json()) + b"\n"


def append_events(conn: Connection, events: Sequence[AuditEvent]) -> list[AuditRecord]:
    """Append ``events`` in order inside ``conn``'s transaction: the store's own hook.

    Stores call this from their write transactions, where there is a connection but no
    :class:`AuditLog` to hand; every check happens before the head is read and locked.
    """
    prepared = [_prepare(event) for event in events]
    if not prepared:
        return []
    insert_sql, positions = _insert_statement(conn)
    cursor = conn.connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            cursor.execute(f"SELECT pg_advisory_xact_lock({_PG_APPEND_LOCK})")
        cursor.execute(_HEAD_SQL)
        seq, prev_hash = cursor.fetchone() or (0, GENESIS_HASH)
        now = now_ms()
        records = []
        for values in prepared:
            seq += 1
            record = {**values, "seq": seq, "time": now, "prev_hash": prev_hash}
            record["hash"] = prev_hash = record_hash(record)
            records.append(record)
        rows = [_to_row(record) for record in records]
        cursor.executemany(
            insert_sql, rows if positions is None else [[r[k] for k in positions] for r in rows]
        )
    finally:
        cursor.close()
    return [AuditRecord(**record) for record in records]


def _insert_statement(conn: Connection) -> tuple[str, tuple[str, ...] | None]:
    """The INSERT for this dialect, compiled once, and its parameter order (None: named).

    Appends run inside every tracking write, so they go straight to the driver: building
    and executing statements through SQLAlchemy would cost more than the inserts.
    """
    found = _INSERTS.get(conn.dialect.name)
    if found is None:
        compiled = insert(s.audit_log).compile(dialect=conn.dialect)
        positions = tuple(compiled.positiontup) if compiled.positional else None  # type: ignore[arg-type]
        found = _INSERTS[conn.dialect.name] = (str(compiled), positions)
    return found


class _ChainCheck:
    """The running state of a verification: the next expected ``seq`` and the last hash."""

    def __init__(self) -> None:
        self.seq = 0
        self.hash = GENESIS_HASH

    def feed(self, row: Row[Any]) -> ChainBreak | None:
        if row.seq != self.seq + 1:
            missing = f"{self.seq + 1}" if row.seq == self.seq + 2 else f"{self.seq + 1}..{row.seq - 1}"
            reason = f"record {missing} is missing: the log jumps from seq {self.seq} to {row.seq}"
            return ChainBreak(self.seq + 1, BreakKind.DELETED, reason)
        if record_hash(_to_record(row).to_json()) != row.hash:
            return _diagnose(row)
        if row.prev_hash != self.hash:
            before = "the genesis value" if self.seq == 0 else f"the hash of record {self.seq}"
            reason = (
                f"its prev_hash is not {before}: records before it were deleted and the rest "
                "renumbered, or the record before it was rewritten"
            )
            return ChainBreak(row.seq, BreakKind.DELETED, reason)
        self.seq, self.hash = row.seq, row.hash
        return None

    def result(self, broken: ChainBreak | None) -> VerifyResult:
        return VerifyResult(records=self.seq, head_seq=self.seq, head_hash=self.hash, broken=broken)


def _diagnose(row: Row[Any]) -> ChainBreak:
    """Tell a moved record (valid hash at another ``seq``) from an edited one."""
    values = _to_record(row).to_json()
    for offset in range(1, _REORDER_WINDOW + 1):
        for seq in (row.seq - offset, row.seq + offset):
            if seq > 0 and record_hash({**values, "seq": seq}) == row.hash:
                reason = f"it was written as seq {seq} and now sits at seq {row.seq}"
                return ChainBreak(row.seq, BreakKind.REORDERED, reason)
    reason = "its contents do not match its hash: a field was changed after it was written"
    return ChainBreak(row.seq, BreakKind.EDITED, reason)


def _check_pin(row: Row[Any], expect_head: tuple[int, str]) -> ChainBreak | None:
    if row.hash == expect_head[1]:
        return None
    reason = (
        f"its hash {row.hash[:16]}… differs from the pinned {expect_head[1][:16]}…: "
        "the chain up to it was rebuilt"
    )
    return ChainBreak(row.seq, BreakKind.REWRITTEN, reason)


def _stream(conn: Connection, batch: int, since_seq: int = 0) -> Iterator[Row[Any]]:
    """Rows after ``since_seq`` in ``seq`` order, fetched by keyset so each batch is an index seek.

    The walk stops at the head found when it starts, so concurrent appends on PostgreSQL
    (where every query sees the latest commits) cannot make it run forever.
    """
    if batch < 1:
        raise InvalidInput(f"batch must be at least 1, got {batch}")
    table = s.audit_log
    last = conn.execute(select(func.max(table.c.seq))).scalar() or 0
    while since_seq < last:
        query = select(table).where(table.c.seq > since_seq, table.c.seq <= last).order_by(table.c.seq)
        rows = conn.execute(query.limit(batch)).all()
        if not rows:
            return
        yield from rows
        since_seq = rows[-1].seq


def _prepare(event: AuditEvent) -> dict[str, Any]:
    """An event's columns (all but seq, time and the hashes), checked before any lock is taken."""
    try:
        kind = ActorKind(event.actor_kind).value
    except ValueError:
        known = ", ".join(k.value for k in ActorKind)
        raise InvalidInput(f"Unknown actor_kind {event.actor_kind!r}: one of {known}") from None
    details = None if event.details is None else dict(event.details)
    if details is not None and len(canonical_json(details)) > MAX_DETAILS_BYTES:
        raise InvalidInput(f"Audit details take at most {MAX_DETAILS_BYTES} bytes as JSON; store digests")
    values = {
        "actor": event.actor,
        "actor_kind": kind,
        "source": event.source,
        "workspace": event.workspace,
        "action": event.action,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "before_digest": None if event.before is None else state_digest(event.before),
        "after_digest": None if event.after is None else state_digest(event.after),
        "request_id": event.request_id,
        "details": details,
    }
    _check_text(values)
    return values


def _check_text(values: Mapping[str, Any]) -> None:
    for name in _REQUIRED:
        if not isinstance(values[name], str) or not values[name]:
            raise InvalidInput(f"An audit event needs a non-empty {name}, got {values[name]!r}")
    for name, length in _LENGTHS.items():
        value = values.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > length):
            raise InvalidInput(
                f"Audit {name} must be a string of at most {length} characters, got {value!r:.80}"
            )


def _to_row(record: Mapping[str, Any]) -> dict[str, Any]:
    details = record["details"]
    return {**record, "details": None if details is None else canonical_json(details).decode()}


def _to_record(row: Row[Any]) -> AuditRecord:
    values = dict(row._mapping)
    if values["details"] is not None:
        values["details"] = orjson.loads(values["details"])
    return AuditRecord(**values)


__all__ = [
    "GENESIS_HASH",
    "ActorKind",
    "AuditEvent",
    "AuditLog",
    "AuditRecord",
    "BreakKind",
    "ChainBreak",
    "VerifyResult",
    "append_events",
    "canonical_json",
    "parse_head",
    "record_hash",
    "state_digest",
]


def _workspace_scope(table: Any) -> list[Any]:
    """A reader confined to a workspace sees its records; ``default`` also gets the local ones.

    Records of commands run on the database itself carry no workspace; they belong to the
    server's own administration, which the ``default`` workspace's auditors oversee.
    """
    workspace = current_workspace()
    if workspace is None:
        return []
    if workspace == DEFAULT_WORKSPACE:
        return [or_(table.c.workspace == workspace, table.c.workspace.is_(None))]
    return [table.c.workspace == workspace]
