"""``conveyor registry request-promotion | approvals | approve | reject | policy``: four eyes.

Registered onto the ``registry`` group by :func:`register`. Commands act as the OS user
(the embedded single-user mode has no sign-in): the requester and the approver must be
different accounts, and neither may have produced the version.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli import _output as out
from conveyor.cli._common import JsonFlag, TrackingUri, database_url

if TYPE_CHECKING:
    from conveyor.registry import ApprovalRequest, ApprovalService

Reason = Annotated[str, typer.Option("--reason", help="Why: kept with the request and in the audit log.")]
policy_app = typer.Typer(help="What moving an alias needs: an approval, metric thresholds, a model card.")


def register(registry_app: typer.Typer) -> None:
    """Add the approval commands to ``conveyor registry``."""
    registry_app.command("request-promotion")(request_promotion)
    registry_app.command("approvals")(list_requests)
    registry_app.command("approve")(approve)
    registry_app.command("reject")(reject)
    registry_app.add_typer(policy_app, name="policy")


def request_promotion(
    name: str,
    version: int,
    alias: Annotated[str, typer.Option("--alias", "-a", help="The protected alias, e.g. champion.")],
    reason: Reason,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Ask for ALIAS of NAME to point at VERSION; someone else approves."""
    with _open(tracking_uri) as approvals:
        found = approvals.request_promotion(name, version, alias, reason)
    _print(found, as_json, f"Requested {name}@{alias} -> v{version}: request {found.id} is {found.status}")


def list_requests(
    status: Annotated[
        str | None, typer.Option("--status", help="PENDING, APPROVED, APPLIED, REJECTED, EXPIRED.")
    ] = None,
    name: Annotated[str | None, typer.Option("--model", "-m", help="Only this model's requests.")] = None,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Approval requests, newest first."""
    with _open(tracking_uri) as approvals:
        found = approvals.list_requests(status, name)
    if as_json:
        out.emit_json({"requests": [r.to_json() for r in found]})
        return
    rows = (
        [r.id, f"{r.model_name}@{r.alias} -> v{r.version}", r.status, r.requested_by, r.decided_by, r.reason]
        for r in found
    )
    out.table(None, ["Id", "Move", "Status", "Requested by", "Decided by", "Reason"], rows, no_wrap=("Id",))


def approve(
    request_id: str, reason: Reason, as_json: JsonFlag = False, tracking_uri: TrackingUri = None
) -> None:
    """Approve a pending request (not your own) and make the alias move."""
    with _open(tracking_uri) as approvals:
        found = approvals.approve(request_id, reason)
    _print(
        found,
        as_json,
        f"Approved {found.id}: {found.model_name}@{found.alias} -> v{found.version} ({found.status})",
    )


def reject(
    request_id: str, reason: Reason, as_json: JsonFlag = False, tracking_uri: TrackingUri = None
) -> None:
    """Reject a pending request (or withdraw your own); it is kept."""
    with _open(tracking_uri) as approvals:
        found = approvals.reject(request_id, reason)
    _print(found, as_json, f"Rejected {found.id}")


@policy_app.command("set")
def policy_set(
    name: Annotated[str, typer.Argument(help="A model name, or '*' for every model.")],
    alias: Annotated[str, typer.Option("--alias", "-a")],
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="METRIC OP VALUE[@DATASET], e.g. accuracy>=0.9@holdout."),
    ] = None,
    require_card: Annotated[
        bool, typer.Option("--require-card", help="Needs a completed model card.")
    ] = False,
    validation_step: Annotated[
        str | None, typer.Option("--require-step", help="A pipeline step that must have succeeded.")
    ] = None,
    require_reproducible: Annotated[
        bool,
        typer.Option("--require-reproducible", help="The source run's reproducibility grade must be A."),
    ] = False,
    unprotected: Annotated[bool, typer.Option("--unprotected", help="Moves need no approval.")] = False,
    expiry_hours: Annotated[int, typer.Option("--expiry-hours", min=1)] = 72,
    as_json: JsonFlag = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Set what moving ALIAS of NAME needs (replaces the policy there was)."""
    with _open(tracking_uri) as approvals:
        policy = approvals.set_policy(
            name,
            alias,
            protected=not unprotected,
            metrics=metric or (),
            require_model_card=require_card,
            require_validation_step=validation_step,
            require_reproducible=require_reproducible,
            expiry_hours=expiry_hours,
        )
    _emit(
        policy.to_json(),
        as_json,
        f"Policy for {name}@{alias}: {'protected' if policy.protected else 'unprotected'}",
    )


@policy_app.command("show")
def policy_show(
    name: str, alias: Annotated[str, typer.Option("--alias", "-a")], tracking_uri: TrackingUri = None
) -> None:
    """The policy in force for ALIAS of NAME (its own, the '*' one, or the built-in one), as JSON."""
    with _open(tracking_uri) as approvals:
        out.emit_json(approvals.get_policy(name, alias).to_json())


def _print(request: ApprovalRequest, as_json: bool, message: str) -> None:
    _emit(request.to_json(), as_json, message)


def _emit(data: dict[str, object], as_json: bool, message: str) -> None:
    if as_json:
        out.emit_json(data)
    else:
        typer.echo(message)


@contextlib.contextmanager
def _open(tracking_uri: str | None) -> Iterator[ApprovalService]:
    """The approvals of the database the URI names (or the local store), closed after."""
    from pydantic import SecretStr

    from conveyor.registry import ApprovalService

    settings, url = database_url(tracking_uri, "registry")
    approvals = ApprovalService.from_settings(settings.model_copy(update={"database_url": SecretStr(url)}))
    try:
        yield approvals
    finally:
        approvals.registry.store.close()
