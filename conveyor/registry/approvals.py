"""Approvals (four eyes): a protected alias moves only after a second person approves.

Flow::

    request_promotion(name, version, alias, reason)      by A (write)
        └── PENDING ──approve(id, reason)  by B ≠ A, B ≠ the run's author, B holds approve
            │           checks: not expired, bytes match the digest, policy evidence
            │           └── APPROVED ──set_alias(..., approval_id=id)──> APPLIED
            ├──reject(id, reason)──> REJECTED
            └──(past expires_at)───> EXPIRED

Every state change commits with its audit record; no request is ever deleted. The alias
guard (:class:`~conveyor.store.sql.approvals.ProtectedAliasGuard`, installed on every
:class:`RegistryService` by default) refuses a protected alias move without an approval
for exactly that model, version and alias, whoever calls ``set_alias``.

Who is acting: the context's principal when the server authenticates; for a local
command (no context, or ``RequestContext.local()``), the OS user, so separation of
duties still holds by name in the embedded single-user mode.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import IntegrityError, InvalidInput, InvalidState, PermissionDenied, Unauthenticated
from conveyor.identity import Permission, RequestContext, require
from conveyor.models import read_model_manifest
from conveyor.registry import _evidence
from conveyor.registry.service import RegistryService
from conveyor.store.base import now_ms
from conveyor.store.entities import Run
from conveyor.store.sql.approval_entities import (
    ALL_MODELS,
    DEFAULT_EXPIRY_HOURS,
    AliasPolicy,
    ApprovalRequest,
    ApprovalStatus,
    MetricThreshold,
)
from conveyor.store.sql.approvals import SqlApprovalStore
from conveyor.store.sql.audit import ActorKind
from conveyor.store.sql.identity import AuditActor
from conveyor.store.sql.registry_entities import (
    MAX_REASON_LENGTH,
    ModelVersion,
    VersionStatus,
    check_alias,
    check_version,
)
from conveyor.tracking.context import current_user

if TYPE_CHECKING:
    from conveyor.config import Settings

_HOUR_MS = 3_600_000
#: Who expires overdue requests: Conveyor itself, not whoever happened to look.
_SYSTEM = AuditActor("system", ActorKind.SYSTEM.value)


class ApprovalService:
    """Policies and promotion requests over one registry; see the module docstring.

    Args:
        registry: The registry whose aliases the approvals move; it must carry the
            protected-alias guard (the default) for approvals to be consumed on use.
    """

    def __init__(self, registry: RegistryService) -> None:
        self.registry = registry
        self.records = SqlApprovalStore(registry.store)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApprovalService:
        return cls(RegistryService.from_settings(settings))

    # -- policies ----------------------------------------------------------------------------

    def set_policy(
        self,
        name: str,
        alias: str,
        *,
        protected: bool = True,
        metrics: Sequence[MetricThreshold | str] = (),
        require_model_card: bool = False,
        require_validation_step: str | None = None,
        require_reproducible: bool = False,
        expiry_hours: int = DEFAULT_EXPIRY_HOURS,
        ctx: RequestContext | None = None,
    ) -> AliasPolicy:
        """Store what moving ``alias`` of model ``name`` (``*``: every model) needs.

        Policies decide what four eyes guard, so changing one needs ``admin`` when the
        caller is authenticated (a local command is trusted, and audited like any other).

        Raises:
            InvalidInput: a bad alias, threshold or expiry.
            NotFound: no such model.
            PermissionDenied: an authenticated caller without ``admin``.
        """
        workspace = None if name == ALL_MODELS else self.registry.get_model(name).workspace
        actor = self._actor(ctx, workspace, Permission.ADMIN)
        if expiry_hours < 1:
            raise InvalidInput(f"expiry_hours must be at least 1, got {expiry_hours}")
        policy = AliasPolicy(
            name,
            check_alias(alias),
            protected,
            tuple(m if isinstance(m, MetricThreshold) else MetricThreshold.parse(m) for m in metrics),
            require_model_card,
            require_validation_step or None,
            require_reproducible,
            expiry_hours,
        )
        return self.records.set_policy(policy, actor)

    def get_policy(self, name: str, alias: str) -> AliasPolicy:
        """The policy in force for ``alias`` of ``name``: its own, the ``*`` one, or built in."""
        return self.records.get_policy(name, check_alias(alias))

    # -- requests ----------------------------------------------------------------------------

    def request_promotion(
        self, name: str, version: int | str, alias: str, reason: str, ctx: RequestContext | None = None
    ) -> ApprovalRequest:
        """Ask for ``alias`` to point at ``version``; a second person decides.

        The evidence the policy asks for is checked now and kept with the request (it is
        checked again, and replaced, at approval).

        Raises:
            InvalidInput: a missing reason, a bad alias, or an alias that is not protected
                (move it with ``set_alias`` directly).
            NotFound: no such model or version.
            InvalidState: the version is not READY.
            PermissionDenied: an authenticated caller without ``write``.
        """
        found = self.registry.get_version(name, check_version(version))
        actor = self._actor(ctx, self.registry.get_model(name).workspace, Permission.WRITE)
        policy = self.get_policy(name, alias)
        if not policy.protected:
            raise InvalidInput(
                f"Alias '{alias}' of {name} is not protected: move it with "
                f"`conveyor registry alias set {name} {alias} {found.version}`"
            )
        if found.status is not VersionStatus.READY:
            raise InvalidState(f"Model version {name}/{found.version} is {found.status}, not READY")
        evidence = self._evidence(policy, found)
        expires_at = now_ms() + policy.expiry_hours * _HOUR_MS
        return self.records.create_request(
            name,
            found.version,
            policy.alias,
            _reason(reason),
            evidence,
            expires_at,
            actor,
            events=self.registry.events,  # webhooks: approval.requested
        )

    def get_request(self, request_id: str) -> ApprovalRequest:
        return self.records.get_request(request_id)

    def list_requests(
        self, status: ApprovalStatus | str | None = None, name: str | None = None
    ) -> list[ApprovalRequest]:
        """Requests, newest first; overdue pending ones are marked EXPIRED first."""
        self.records.expire_overdue(_SYSTEM)
        wanted = None if status is None else _status(status)
        return self.records.list_requests(wanted, name)

    def approve(self, request_id: str, reason: str, ctx: RequestContext | None = None) -> ApprovalRequest:
        """Approve a pending request and make the alias move it asked for.

        Raises:
            PermissionDenied: the approver requested it, authored the version's source run
                or registered the version, or (authenticated) lacks ``approve``.
            Unauthenticated: a server without ``--auth`` cannot tell who approves.
            InvalidState: the request expired (it is marked EXPIRED), or the policy's
                evidence fails (naming the values found).
            IntegrityError: the version's files no longer match its recorded digest.
            Conflict: the request was decided already (e.g. by a concurrent approval).
        """
        request = self._pending(request_id)
        actor = self._actor(ctx, self.registry.get_model(request.model_name).workspace, Permission.APPROVE)
        version = self.registry.get_version(request.model_name, request.version)
        _check_duties(actor.name, request, version, _evidence.source_run(self.records, version))
        self._verify_bytes(version)
        evidence = self._evidence(self.get_policy(request.model_name, request.alias), version)
        if problems := _evidence.failures(evidence):
            raise InvalidState(
                f"Cannot approve request {request.id}: the policy's evidence fails: " + "; ".join(problems)
            )
        decided = self.records.decide(
            request.id,
            ApprovalStatus.APPROVED,
            actor,
            _reason(reason),
            evidence,
            events=self.registry.events,  # webhooks: approval.decided
        )
        if decided.status is ApprovalStatus.EXPIRED:
            raise _expired(decided)
        self.registry.set_alias(
            request.model_name,
            request.alias,
            request.version,
            reason=request.reason,
            approval_id=request.id,
            actor=actor.name,
        )
        return self.records.get_request(request.id)

    def reject(self, request_id: str, reason: str, ctx: RequestContext | None = None) -> ApprovalRequest:
        """Reject a pending request; it is kept, with who rejected it and why.

        The requester may withdraw their own request this way; anyone else needs
        ``approve`` when authenticated.

        Raises:
            InvalidState: the request expired. Conflict: it was decided already.
        """
        request = self._pending(request_id)
        workspace = self.registry.get_model(request.model_name).workspace
        actor = self._actor(ctx, workspace, None)
        if actor.name != request.requested_by:
            actor = self._actor(ctx, workspace, Permission.APPROVE)
        decided = self.records.decide(
            request.id,
            ApprovalStatus.REJECTED,
            actor,
            _reason(reason),
            events=self.registry.events,  # webhooks: approval.decided
        )
        if decided.status is ApprovalStatus.EXPIRED:
            raise _expired(decided)
        return decided

    # -- helpers -----------------------------------------------------------------------------

    def _pending(self, request_id: str) -> ApprovalRequest:
        """The request if still pending; an overdue one is marked EXPIRED and refused."""
        request = self.records.get_request(request_id)
        if request.status is ApprovalStatus.PENDING and request.expires_at <= now_ms():
            request = self.records.decide(request.id, ApprovalStatus.EXPIRED, _SYSTEM, "")
        if request.status is ApprovalStatus.EXPIRED:
            raise _expired(request)
        if request.status is not ApprovalStatus.PENDING:
            raise InvalidState(f"Approval request {request.id} is {request.status}, no longer PENDING")
        return request

    def _evidence(self, policy: AliasPolicy, version: ModelVersion) -> list[dict[str, object]]:
        return _evidence.evaluate(policy, version, _evidence.source_run(self.records, version), self.records)

    def _verify_bytes(self, version: ModelVersion) -> None:
        """Fetch the version's files and check them against the digest recorded at registration."""
        with tempfile.TemporaryDirectory(prefix="conveyor-approve-") as scratch:
            resolved = self.registry.fetch(version, Path(scratch))
            try:
                digest = read_model_manifest(resolved.folder).digest
            except IntegrityError as exc:
                raise IntegrityError(
                    f"Refusing to approve {version.uri}: its files changed since registration: {exc}"
                ) from exc
        if digest != resolved.expected_digest:
            raise IntegrityError(
                f"Refusing to approve {version.uri}: its files have digest {digest}, but "
                f"{resolved.expected_digest} was recorded at registration"
            )

    def _actor(
        self, ctx: RequestContext | None, workspace: str | None, needs: Permission | None
    ) -> AuditActor:
        """Who acts, checked for ``needs`` in ``workspace`` when authenticated."""
        if ctx is None or ctx.is_local:
            return AuditActor(current_user(), "user", workspace=workspace)
        if ctx.principal is None:
            raise Unauthenticated(
                "Approvals need to know who acts: this server runs without authentication. "
                "Start it with `conveyor server --auth`, or run the command where the database is."
            )
        if needs is not None:
            require(ctx.principal, needs, workspace or ctx.workspace)
        return AuditActor(ctx.principal.name, str(ctx.principal.kind), ctx.source, workspace, ctx.request_id)


def _check_duties(approver: str, request: ApprovalRequest, version: ModelVersion, run: Run | None) -> None:
    """Four eyes: neither the requester nor whoever produced the version may approve."""
    if approver == request.requested_by:
        raise PermissionDenied(
            f"{approver} requested approval {request.id} and cannot approve it: a different "
            "person with the approver role must"
        )
    authors = {version.created_by}
    if run is not None:
        authors |= {run.info.user_id, run.tags.get("mlflow.user")}
    if approver in authors - {None}:
        raise PermissionDenied(
            f"{approver} authored {version.uri} (its source run or its registration) and cannot "
            f"approve its promotion (request {request.id}): a different approver must"
        )


def _reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("A reason is required: it is kept with the request and in the audit log")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(
            f"The reason is {len(reason)} characters long, at most {MAX_REASON_LENGTH} are allowed"
        )
    return reason.strip()


def _status(status: ApprovalStatus | str) -> ApprovalStatus:
    try:
        return ApprovalStatus(str(status).upper())
    except ValueError:
        raise InvalidInput(
            f"Unknown status {status!r}: one of {', '.join(s.value for s in ApprovalStatus)}"
        ) from None


def _expired(request: ApprovalRequest) -> InvalidState:
    return InvalidState(
        f"Approval request {request.id} expired before a decision (it is kept as EXPIRED); "
        f"request the promotion again: `conveyor registry request-promotion {request.model_name} "
        f"{request.version} --alias {request.alias} --reason ...`"
    )
