"""Cron schedules of pipelines in the ``pipeline_schedules`` table, and the cron arithmetic they need.

A schedule says "run this pipeline target with these params on this executor whenever this
cron expression fires, in this time zone". Whoever fires schedules (``conveyor scheduler``,
or ``conveyor server --scheduler``) calls :meth:`ScheduleStore.claim_due` on a timer and
starts a run for each schedule it gets back.

Two rules make firing safe with any number of schedulers and any downtime:

* **Claims are compare-and-set.** A claim moves ``next_fire_time`` forward with
  ``UPDATE … WHERE next_fire_time = <the value read>``; a second scheduler that read the
  same row updates nothing, so it never fires the same trigger again.
* **Missed triggers coalesce.** The new ``next_fire_time`` is the first cron time *after
  now*, not after the missed one: a scheduler back from an hour's downtime runs an
  every-minute schedule once, not sixty times.

The cron arithmetic lives here rather than in ``conveyor.pipelines`` because the store
computes fire times when it writes them, and storage must not import capabilities.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter
from sqlalchemy import ColumnElement, Connection, RowMapping, delete, insert, or_, select, update
from sqlalchemy import exc as sa_exc

from conveyor.errors import AlreadyExists, InvalidInput, NotFound
from conveyor.store.base import now_ms
from conveyor.store.sql import audit_hooks as audit
from conveyor.store.sql import schema as s
from conveyor.store.sql.store import SqlStore

#: Executors a schedule may name; ``conveyor pipeline run --executor`` takes the same names.
EXECUTORS = ("local", "process", "dask")
MAX_NAME_LENGTH = 250
CRON_EXAMPLE = "'0 3 * * *' (03:00 every day)"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Schedule:
    """One stored schedule. Times are milliseconds since the epoch."""

    schedule_id: str
    name: str
    #: What ``conveyor pipeline run`` takes: ``path/churn.py``, ``path/churn.py:churn``, ``pkg.mod:churn``.
    target: str
    #: Pipeline params as given on the command line (``--param key=value``), still text.
    params: dict[str, str]
    cron: str
    #: IANA zone the cron expression is read in (``0 3 * * *`` is 03:00 there).
    timezone: str
    executor: str
    executor_address: str | None
    #: A paused schedule keeps its row but is never claimed.
    enabled: bool
    #: The next trigger; always a cron time of the schedule, strictly after the last claim.
    next_fire_time: int
    last_fire_time: int | None
    #: The pipeline run the last trigger started, once that run has recorded itself.
    last_run_id: str | None
    created: int


class ScheduleStore:
    """Create, list, pause and delete schedules, and claim the due ones exactly once."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def close(self) -> None:
        self.store.close()

    def create(
        self,
        name: str,
        target: str,
        cron: str,
        *,
        params: Mapping[str, str] | None = None,
        timezone: str = "UTC",
        executor: str = "local",
        executor_address: str | None = None,
        now: int | None = None,
    ) -> Schedule:
        """Store a new, enabled schedule whose first trigger is the first cron time after ``now``.

        Raises:
            InvalidInput: a bad name, cron expression, time zone, executor or param.
            AlreadyExists: another schedule has this name.
        """
        _check_name(name)
        cron, timezone = check_cron(cron), check_timezone(timezone)
        created = now_ms() if now is None else now
        values = {
            "id": uuid.uuid4().hex,
            "name": name,
            "target": _check_target(target),
            "params": json.dumps(_check_params(params or {}), sort_keys=True),
            "cron": cron,
            "timezone": timezone,
            "executor": _check_executor(executor),
            "executor_address": executor_address or None,
            "enabled": True,
            "next_fire_time": next_fire_time(cron, timezone, created),
            "created": created,
        }
        taken = AlreadyExists(
            f"A schedule named {name!r} already exists: pick another --name, or delete it first "
            f"with `conveyor pipeline schedules delete {name}`."
        )
        try:
            with self.store._write() as conn:
                if conn.execute(select(s.pipeline_schedules.c.id).where(_named(name))).first():
                    raise taken
                conn.execute(insert(s.pipeline_schedules).values(**values))
                after = {k: values[k] for k in ("name", "target", "params", "cron", "timezone", "executor")}
                audit.record(
                    conn, "schedule.create", "schedule", values["id"], after=after, details={"name": name}
                )
                return _row_schedule(_row(conn, values["id"]))
        except sa_exc.IntegrityError as exc:  # a concurrent create won the unique name
            raise taken from exc

    def list_all(self) -> list[Schedule]:
        """Every schedule, paused ones included, by name."""
        table = s.pipeline_schedules
        with self.store._read() as conn:
            rows = conn.execute(select(table).order_by(table.c.name)).mappings()
            return [_row_schedule(r) for r in rows]

    def get(self, name_or_id: str) -> Schedule:
        """The schedule with this name or id.

        Raises:
            NotFound: no schedule has this name or id.
        """
        with self.store._read() as conn:
            return _row_schedule(_row(conn, name_or_id))

    def delete(self, name_or_id: str) -> Schedule:
        """Remove a schedule for good and return it; runs it started are kept."""
        with self.store._write() as conn:
            row = _row(conn, name_or_id)
            conn.execute(delete(s.pipeline_schedules).where(s.pipeline_schedules.c.id == row["id"]))
            details = {"name": row["name"]}
            audit.record(
                conn, "schedule.delete", "schedule", row["id"], before={"name": row["name"]}, details=details
            )
            return _row_schedule(row)

    def set_enabled(self, name_or_id: str, enabled: bool, *, now: int | None = None) -> Schedule:
        """Pause or resume a schedule.

        Resuming moves the next trigger to the first cron time after ``now``: the triggers
        missed while paused were skipped on purpose, so none of them fires late.
        """
        table = s.pipeline_schedules
        with self.store._write() as conn:
            row = _row(conn, name_or_id)
            values: dict[str, object] = {"enabled": enabled}
            if enabled and not row["enabled"]:
                after = now_ms() if now is None else now
                values["next_fire_time"] = next_fire_time(row["cron"], row["timezone"], after)
            conn.execute(update(table).where(table.c.id == row["id"]).values(**values))
            action = "schedule.enable" if enabled else "schedule.disable"
            before, after = {"enabled": bool(row["enabled"])}, {"enabled": enabled}
            details = {"name": row["name"]}
            audit.record(conn, action, "schedule", row["id"], before=before, after=after, details=details)
            return _row_schedule(_row(conn, row["id"]))

    def claim_due(self, now: int) -> list[Schedule]:
        """Claim the enabled schedules due at ``now`` (ms); each is returned to one caller only.

        A claim sets ``last_fire_time`` to ``now`` and ``next_fire_time`` to the first cron
        time after ``now``, with a compare-and-set on the old ``next_fire_time``, so
        concurrent claimers split the due schedules between them and missed triggers
        coalesce into one. The returned schedules carry the new times.
        """
        table = s.pipeline_schedules
        due_query = select(table).where(table.c.enabled.is_(True), table.c.next_fire_time <= now)
        with self.store._read() as conn:
            due = [_row_schedule(r) for r in conn.execute(due_query.order_by(table.c.name)).mappings()]
        if not due:
            return []
        # One transaction, rows in name order: concurrent claimers on PostgreSQL lock the rows
        # in the same order, so one waits for the other instead of deadlocking.
        with self.store._write() as conn:
            claimed = [won for schedule in due if (won := _claim(conn, schedule, now)) is not None]
            fired = [
                audit.event("schedule.fire", "schedule", c.schedule_id, details={"name": c.name, "at": now})
                for c in claimed
            ]
            if fired:
                audit.record_many(conn, fired)
            return claimed

    def record_run(self, schedule_id: str, run_id: str) -> None:
        """Remember which pipeline run the schedule's latest trigger started.

        Raises:
            NotFound: the schedule was deleted meanwhile.
        """
        table = s.pipeline_schedules
        with self.store._write() as conn:
            result = conn.execute(update(table).where(table.c.id == schedule_id).values(last_run_id=run_id))
            if result.rowcount == 0:
                raise NotFound(f"No schedule with id {schedule_id!r}; it may have been deleted.")


def open_schedule_store(url: str, *, upgrade: bool = True) -> ScheduleStore:
    """Schedules in the database at ``url``, opened (and migrated, with ``upgrade``).

    Raises:
        InvalidInput: ``url`` names a server; schedules are read from the database itself.
    """
    from conveyor.store import open_store
    from conveyor.store.sql.engine import mask_url

    store = open_store(url, upgrade=upgrade)
    if not isinstance(store, SqlStore):
        store.close()
        raise InvalidInput(
            f"Schedules live in the database itself, not behind a server ({mask_url(url)}): "
            "use the database URL (CONVEYOR_DATABASE_URL or --tracking-uri)."
        )
    return ScheduleStore(store)


# -- cron -----------------------------------------------------------------------------------


def check_cron(expression: str) -> str:
    """The expression with its whitespace normalised, if it is a five-field cron or an ``@`` alias.

    Seconds fields (six or seven columns) are refused: schedulers check every few seconds
    at best, so a per-second schedule would silently fire late.

    Raises:
        InvalidInput: naming the expression, what is wrong and an example.
    """
    normalised = " ".join(str(expression).split())
    reason = None
    if not normalised.startswith("@") and len(normalised.split()) != 5:
        reason = "it needs five fields: minute hour day-of-month month day-of-week"
    else:
        try:
            croniter(normalised, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
        except CroniterBadDateError:
            reason = "it never fires"
        except CroniterError:
            reason = "it is not valid cron syntax"
    if reason is not None:
        raise InvalidInput(f"Invalid cron expression {expression!r}: {reason}; for example {CRON_EXAMPLE}.")
    return normalised


def check_timezone(name: str) -> str:
    """The IANA time zone name, if this system knows it.

    Raises:
        InvalidInput: an unknown zone, with examples of valid ones.
    """
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"Unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/Paris'."
        ) from None
    return name


def next_fire_time(cron: str, timezone: str, after: int) -> int:
    """The first time (ms) strictly after ``after`` at which ``cron`` fires, read in ``timezone``.

    Daylight saving time is handled as cron daemons do: a time skipped when clocks go
    forward fires at the first instant after the gap, and a time repeated when clocks go
    back fires once, at its first occurrence, unless the minute or hour field is a
    wildcard (``*/30 * * * *`` really does come round twice in that hour).
    """
    zone = ZoneInfo(timezone)
    times = croniter(cron, datetime.fromtimestamp(after / 1000, tz=zone))
    minute, hour = times.expressions[:2]
    interval = "*" in f"{minute}{hour}"
    fire: datetime = times.get_next(datetime)
    while not interval and _is_repeat(fire, zone):
        fire = times.get_next(datetime)
    return int(fire.timestamp() * 1000)


def _is_repeat(moment: datetime, zone: ZoneInfo) -> bool:
    """Whether this wall-clock time is the second of two (the hour repeated when clocks go back)."""
    wall = moment.replace(tzinfo=None)
    first, second = (wall.replace(tzinfo=zone, fold=fold).utcoffset() for fold in (0, 1))
    return first != second and moment.utcoffset() == second


# -- validation -----------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"Invalid schedule name {name!r}: use letters, digits, '_', '-' and '.', starting with a "
            f"letter or digit, at most {MAX_NAME_LENGTH} characters."
        )
    if _ID.fullmatch(name):
        raise InvalidInput(f"Invalid schedule name {name!r}: it looks like a schedule id; pick another.")


def _check_target(target: str) -> str:
    if not isinstance(target, str) or not target.strip():
        raise InvalidInput(
            f"Invalid pipeline target {target!r}: name a file (churn.py, churn.py:churn) or a module "
            "(pkg.mod:churn)."
        )
    return target


def _check_executor(executor: str) -> str:
    if executor not in EXECUTORS:
        raise InvalidInput(f"Unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}.")
    return executor


def _check_params(params: Mapping[str, str]) -> dict[str, str]:
    for key, value in params.items():
        if not isinstance(key, str) or not key or "=" in key or not isinstance(value, str):
            raise InvalidInput(
                f"Invalid pipeline param {key!r}={value!r}: keys are non-empty text without '=', "
                "values are text."
            )
    return dict(params)


# -- rows -----------------------------------------------------------------------------------


def _named(name_or_id: str) -> ColumnElement[bool]:
    table = s.pipeline_schedules
    return or_(table.c.id == name_or_id, table.c.name == name_or_id)


def _row(conn: Connection, name_or_id: str) -> RowMapping:
    row = conn.execute(select(s.pipeline_schedules).where(_named(name_or_id))).mappings().first()
    if row is None:
        raise NotFound(
            f"No schedule named {name_or_id!r} or with that id; "
            "`conveyor pipeline schedules list` shows them."
        )
    return row


def _claim(conn: Connection, schedule: Schedule, now: int) -> Schedule | None:
    """Move one due schedule past ``now`` unless another claimer already has."""
    table = s.pipeline_schedules
    upcoming = next_fire_time(schedule.cron, schedule.timezone, now)
    result = conn.execute(
        update(table)
        .where(
            table.c.id == schedule.schedule_id,
            table.c.enabled.is_(True),
            table.c.next_fire_time == schedule.next_fire_time,
        )
        .values(next_fire_time=upcoming, last_fire_time=now)
    )
    if result.rowcount != 1:
        return None
    return replace(schedule, next_fire_time=upcoming, last_fire_time=now)


def _row_schedule(row: RowMapping) -> Schedule:
    return Schedule(
        schedule_id=row["id"],
        name=row["name"],
        target=row["target"],
        params=json.loads(row["params"]),
        cron=row["cron"],
        timezone=row["timezone"],
        executor=row["executor"],
        executor_address=row["executor_address"],
        enabled=bool(row["enabled"]),
        next_fire_time=row["next_fire_time"],
        last_fire_time=row["last_fire_time"],
        last_run_id=row["last_run_id"],
        created=row["created"],
    )
