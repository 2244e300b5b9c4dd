"""The model registry: named models, immutable versions, aliases with a history.

Object model::

    registered model (name, description, owner, tags)
    ├── versions 1, 2, 3…    numbers never reused; source, run and model digest frozen
    │   └── tags, MLflow stage (deprecated: None/Staging/Production/Archived)
    └── aliases              champion -> 3, challenger -> 4
        └── alias events     every move: old -> new version, who, when, why, approval

- :class:`RegistryService` is the API; the CLI (``conveyor registry``) and the MLflow
  REST routes call it.
- Importing this package makes ``conveyor.models.load("models:/churn@champion")`` work:
  it registers the ``models`` URI resolver, which verifies the files against the digest
  recorded at registration.
- ``alias_guards`` are where approvals plug in: each alias move is offered to them, as an
  :class:`AliasMove`, inside the move's transaction. By default the protected-alias guard
  is installed: ``champion`` and ``production`` move only under an approval
  (:class:`ApprovalService`: request, a second person approves, the move is made).

Example::

    from conveyor.registry import RegistryService

    registry = RegistryService.from_settings(Settings())
    registry.create_model("churn")
    v = registry.create_version("churn", "runs:/<run_id>/model")
    registry.set_alias("churn", "champion", v.version, reason="best AUC on holdout")
    registry.alias_at("churn", "champion", datetime(2026, 3, 1, 10, tzinfo=UTC))
"""

from __future__ import annotations

from conveyor.models import register_resolver
from conveyor.registry._resolver import resolve_models_uri
from conveyor.registry.approvals import ApprovalService
from conveyor.registry.service import RegistryService
from conveyor.store.sql.approval_entities import AliasPolicy, ApprovalRequest, ApprovalStatus, MetricThreshold
from conveyor.store.sql.registry import AliasGuard
from conveyor.store.sql.registry_entities import (
    AliasEvent,
    AliasMove,
    ModelVersion,
    RegisteredModel,
    Stage,
    VersionStatus,
)

__all__ = [
    "AliasEvent",
    "AliasGuard",
    "AliasMove",
    "AliasPolicy",
    "ApprovalRequest",
    "ApprovalService",
    "ApprovalStatus",
    "MetricThreshold",
    "ModelVersion",
    "RegisteredModel",
    "RegistryService",
    "Stage",
    "VersionStatus",
]

register_resolver("models", resolve_models_uri, clobber=True)
