"""Approvals on the SQL store: alias policies, promotion requests, and the alias guard.

Every change commits with its audit record. A request changes state only while its row
is locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already
serializes writers) and only from ``PENDING``, so two approvers racing on one request
cannot both decide it. :class:`ProtectedAliasGuard` runs inside the alias move's own
transaction: it consumes an ``APPROVED`` request (→ ``APPLIED``) in the same commit as
the move, so an approval is used exactly once and never without its move.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select, update

from conveyor.errors import Conflict, NotFound, PermissionDenied
from conveyor.store.actor import AuditActor
from conveyor.store.base import now_ms
from conveyor.store.sql import schema as s
from conveyor.store.sql import schema_approvals as a
from conveyor.store.sql import schema_registry as r
from conveyor.store.sql import scope
from conveyor.store.sql.approval_entities import (
    ALL_MODELS,
    AliasPolicy,
    ApprovalRequest,
    ApprovalStatus,
    MetricThreshold,
    builtin_policy,
)
from conveyor.store.sql.audit import AuditEvent, AuditLog
from conveyor.store.sql.registry_entities import AliasMove
from conveyor.store.sql.store import SqlStore
from conveyor.store.sql.webhooks import EventHook, publish

DEFAULT_LIST_LIMIT = 1000


class SqlApprovalStore:
    """Policies and requests in the metadata database; the service validates input first."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    # -- policies ----------------------------------------------------------------------------

    def set_policy(self, policy: AliasPolicy, actor: AuditActor) -> AliasPolicy:
        """Store ``policy`` for its model (or ``*``), replacing the one there was."""
        now = now_ms()
        with self.store._write() as conn:
            scope = ALL_MODELS if policy.model == ALL_MODELS else str(_model(conn, policy.model)["id"])
            table = a.alias_policies
            key = (table.c.scope == scope, table.c.alias == policy.alias)
            before = conn.execute(select(table).where(*key)).mappings().first()
            values = _policy_values(policy, actor.name, now)
            if before is None:
                conn.execute(insert(table).values(scope=scope, alias=policy.alias, **values))
            else:
                conn.execute(update(table).where(*key).values(**values))
            stored = _policy(policy.model, {"alias": policy.alias, **values})
            previous = None if before is None else _policy(policy.model, before)
            self._audit(
                conn, actor, "registry.policy.set", f"{policy.model}@{policy.alias}", previous, stored
            )
        return stored

    def get_policy(self, model: str, alias: str) -> AliasPolicy:
        """The policy in force: the model's own, else the ``*`` one, else the built-in one."""
        with self.store._read() as conn:
            if model == ALL_MODELS:
                return _stored_policy(conn, ALL_MODELS, ALL_MODELS, alias) or builtin_policy(model, alias)
            return policy_in_force(conn, _model(conn, model), alias)

    # -- requests ----------------------------------------------------------------------------

    def create_request(
        self,
        model: str,
        version: int,
        alias: str,
        reason: str,
        evidence: list[dict[str, Any]],
        expires_at: int,
        actor: AuditActor,
        events: Iterable[EventHook] = (),
    ) -> ApprovalRequest:
        """Record a ``PENDING`` request (the service checked the version and the policy);
        ``events`` hooks see ``approval.requested`` in the same transaction."""
        with self.store._write() as conn:
            row = _model(conn, model)
            values = {
                "id": uuid.uuid4().hex,
                "model_id": row["id"],
                "model_name": row["name"],
                "version": version,
                "alias": alias,
                "reason": reason,
                "requested_by": actor.name,
                "requested_at": now_ms(),
                "status": ApprovalStatus.PENDING.value,
                "evidence": json.dumps(evidence),
                "expires_at": expires_at,
            }
            conn.execute(insert(a.approval_requests).values(**values))
            request = _request(values)
            self._audit(conn, actor, "registry.approval.request", request.id, None, request.to_json())
            publish(conn, events, "approval.requested", request.to_json())
        return request

    def get_request(self, request_id: str) -> ApprovalRequest:
        """Raises: NotFound naming the id."""
        with self.store._read() as conn:
            return _request(_request_row(conn, request_id))

    def list_requests(
        self, status: ApprovalStatus | None = None, model: str | None = None, limit: int = DEFAULT_LIST_LIMIT
    ) -> list[ApprovalRequest]:
        """Requests, newest first, optionally of one status or model (by its current name)."""
        table = a.approval_requests
        query = select(table).order_by(table.c.requested_at.desc(), table.c.id).limit(limit)
        models = r.registered_models
        query = query.where(*scope.owned_by(table.c.model_id, models.c.id, models.c.workspace))
        if status is not None:
            query = query.where(table.c.status == status.value)
        with self.store._read() as conn:
            if model is not None:
                query = query.where(table.c.model_id == _model(conn, model)["id"])
            return [_request(row) for row in conn.execute(query).mappings()]

    def expire_overdue(self, actor: AuditActor) -> int:
        """Mark every pending request past its expiry ``EXPIRED`` (kept, audited)."""
        table = a.approval_requests
        due = (table.c.status == ApprovalStatus.PENDING.value, table.c.expires_at <= now_ms())
        with self.store._read() as conn:
            ids = list(conn.execute(select(table.c.id).where(*due)).scalars())
        for request_id in ids:
            self.decide(request_id, ApprovalStatus.EXPIRED, actor, "expired before a decision")
        return len(ids)

    def decide(
        self,
        request_id: str,
        status: ApprovalStatus,
        actor: AuditActor,
        reason: str,
        evidence: list[dict[str, Any]] | None = None,
        events: Iterable[EventHook] = (),
    ) -> ApprovalRequest:
        """Move a ``PENDING`` request to ``status`` (APPROVED, REJECTED or EXPIRED);
        ``events`` hooks see ``approval.decided`` in the same transaction.

        A request found past its expiry is marked ``EXPIRED`` instead, whatever was asked;
        the caller tells by the returned status.

        Raises:
            NotFound: no such request.
            Conflict: the request is no longer pending (decided by someone else first).
        """
        with self.store._write() as conn:
            row = _request_row(conn, request_id, lock=True)
            if row["status"] != ApprovalStatus.PENDING.value:
                if status is ApprovalStatus.EXPIRED:
                    return _request(row)
                raise Conflict(f"Approval request {request_id} is {row['status']}, no longer PENDING")
            now = now_ms()
            if row["expires_at"] <= now:
                status, reason = ApprovalStatus.EXPIRED, "expired before a decision"
            values: dict[str, Any] = {
                "status": status.value,
                "decided_by": "system" if status is ApprovalStatus.EXPIRED else actor.name,
                "decided_at": now,
                "decision_reason": reason,
            }
            if evidence is not None and status is ApprovalStatus.APPROVED:
                values["evidence"] = json.dumps(evidence)
            conn.execute(
                update(a.approval_requests).where(a.approval_requests.c.id == request_id).values(**values)
            )
            decided = _request({**row, **values})
            action = f"registry.approval.{status.value.lower()}"
            self._audit(conn, actor, action, request_id, _request(row).to_json(), decided.to_json())
            publish(conn, events, "approval.decided", decided.to_json())
        return decided

    def validation_step_states(self, run_id: str, step: str) -> list[str]:
        """The states of pipeline step ``step`` in the pipeline runs that logged to ``run_id``."""
        runs, steps = s.pipeline_runs, s.pipeline_steps
        query = (
            select(steps.c.status)
            .join(runs, runs.c.id == steps.c.run_id)
            .where(runs.c.tracking_run_id == run_id, steps.c.step_name == step)
        )
        with self.store._read() as conn:
            return list(conn.execute(query).scalars())

    def _audit(
        self, conn: Connection, actor: AuditActor, action: str, resource: str, before: Any, after: Any
    ) -> None:
        details = _details(after)
        AuditLog(self.store).append(
            AuditEvent(
                actor=actor.name,
                actor_kind=actor.kind,
                action=action,
                resource_type="approval_request" if "approval" in action else "alias_policy",
                resource_id=resource,
                source=actor.source,
                workspace=actor.workspace,
                before=_jsonable(before),
                after=_jsonable(after),
                request_id=actor.request_id,
                details=details,
            ),
            conn,
        )


class ProtectedAliasGuard:
    """An alias guard (see ``AliasGuard``): a protected alias moves only under an approval.

    The approval must be ``APPROVED`` for exactly this model, version and alias; it becomes
    ``APPLIED`` in the move's transaction. Removing a protected alias needs no approval: it
    cannot put an unreviewed model in front of anyone (it is audited like every move).
    """

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def __call__(self, conn: Connection, move: AliasMove) -> None:
        if move.new_version is None:
            return
        model = _model(conn, move.model_name)
        if not policy_in_force(conn, model, move.alias).protected:
            return
        if move.approval_id is None:
            raise PermissionDenied(
                f"Alias '{move.alias}' of {move.model_name} is protected: moving it needs an approved "
                f"request. Run `conveyor registry request-promotion {move.model_name} {move.new_version} "
                f"--alias {move.alias} --reason ...`, then a second person with the approver role runs "
                "`conveyor registry approve <id> --reason ...`."
            )
        self._consume(conn, model, move)

    def _consume(self, conn: Connection, model: RowMapping, move: AliasMove) -> None:
        row = (
            conn.execute(
                _lockable(
                    conn, select(a.approval_requests).where(a.approval_requests.c.id == move.approval_id)
                )
            )
            .mappings()
            .first()
        )
        wanted = (model["id"], move.new_version, move.alias, ApprovalStatus.APPROVED.value)
        if row is None or (row["model_id"], row["version"], row["alias"], row["status"]) != wanted:
            found = (
                "no such request"
                if row is None
                else f"{row['status']} for {row['model_name']} version {row['version']} @{row['alias']}"
            )
            raise PermissionDenied(
                f"Approval {move.approval_id} does not allow pointing {move.model_name}@{move.alias} at "
                f"version {move.new_version} ({found}); it must be APPROVED for exactly that move."
            )
        values = {"status": ApprovalStatus.APPLIED.value, "applied_at": now_ms()}
        conn.execute(
            update(a.approval_requests).where(a.approval_requests.c.id == row["id"]).values(**values)
        )
        actor = AuditActor(move.actor, "user", workspace=model["workspace"])
        SqlApprovalStore(self.store)._audit(
            conn,
            actor,
            "registry.approval.apply",
            row["id"],
            _request(row).to_json(),
            _request({**row, **values}).to_json(),
        )


def policy_in_force(conn: Connection, model: RowMapping, alias: str) -> AliasPolicy:
    """The model's own policy for ``alias``, else the ``*`` one, else the built-in one."""
    return (
        _stored_policy(conn, str(model["id"]), model["name"], alias)
        or _stored_policy(conn, ALL_MODELS, model["name"], alias)
        or builtin_policy(model["name"], alias)
    )


def _stored_policy(conn: Connection, scope: str, model: str, alias: str) -> AliasPolicy | None:
    table = a.alias_policies
    row = conn.execute(select(table).where(table.c.scope == scope, table.c.alias == alias)).mappings().first()
    return None if row is None else _policy(model if scope != ALL_MODELS else ALL_MODELS, row)


def _policy(model: str, row: Any) -> AliasPolicy:
    return AliasPolicy(
        model=model,
        alias=row["alias"],
        protected=bool(row["protected"]),
        metrics=tuple(MetricThreshold.from_json(m) for m in json.loads(row["metrics"])),
        require_model_card=bool(row["require_model_card"]),
        require_validation_step=row["require_validation_step"],
        require_reproducible=bool(row["require_reproducible"]),
        expiry_hours=row["expiry_hours"],
        updated_by=row["updated_by"],
        updated_at=row["updated_at"],
    )


def _policy_values(policy: AliasPolicy, actor: str, now: int) -> dict[str, Any]:
    return {
        "protected": policy.protected,
        "metrics": json.dumps(policy.to_json()["metrics"]),
        "require_model_card": policy.require_model_card,
        "require_reproducible": policy.require_reproducible,
        "require_validation_step": policy.require_validation_step,
        "expiry_hours": policy.expiry_hours,
        "updated_by": actor,
        "updated_at": now,
    }


def _model(conn: Connection, name: str) -> RowMapping:
    table = r.registered_models
    query = select(table).where(table.c.name == name, *scope.workspace_is(table.c.workspace))
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"Registered Model with name={name} not found")
    return row


def _lockable(conn: Connection, query: Any) -> Any:
    return query.with_for_update() if conn.dialect.name == "postgresql" else query


def _request_row(conn: Connection, request_id: str, *, lock: bool = False) -> RowMapping:
    query = select(a.approval_requests).where(a.approval_requests.c.id == request_id)
    row = conn.execute(_lockable(conn, query) if lock else query).mappings().first()
    if row is None:
        raise NotFound(f"Approval request {request_id!r} not found; `conveyor registry approvals` lists them")
    return row


def _request(row: Any) -> ApprovalRequest:
    evidence = row["evidence"]
    return ApprovalRequest(
        id=row["id"],
        model_name=row["model_name"],
        version=row["version"],
        alias=row["alias"],
        reason=row["reason"],
        requested_by=row["requested_by"],
        requested_at=row["requested_at"],
        status=ApprovalStatus(row["status"]),
        expires_at=row["expires_at"],
        evidence=json.loads(evidence) if isinstance(evidence, str) else list(evidence),
        decided_by=row.get("decided_by"),
        decided_at=row.get("decided_at"),
        decision_reason=row.get("decision_reason"),
        applied_at=row.get("applied_at"),
    )


def _jsonable(state: AliasPolicy | dict[str, Any] | None) -> dict[str, Any] | None:
    if state is None or isinstance(state, dict):
        return state
    return state.to_json()


def _details(after: Any) -> dict[str, Any] | None:
    """The fields an auditor reads first: which move, and why it was decided so."""
    if isinstance(after, dict) and "status" in after:
        keys = ("model_name", "version", "alias", "status", "decision_reason")
        return {key: after[key] for key in keys if after.get(key) is not None}
    return None
