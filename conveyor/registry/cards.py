"""Model cards: what the platform knows about one model version, written down for people.

A card is assembled from records Conveyor already keeps, so nobody has to retype them
and they cannot drift from the truth: the model manifest (flavor, framework versions,
signature, digest — verified against the digest recorded at registration), the source
run (parameters, metrics, dataset inputs with full-content SHA-256, git commit and dirty
flag), the pipeline run the model came from, aliases and their history, and approvals.
Only three facts need a person, and they are editable version tags:

======================================  ==============================================
``conveyor.card.intended_use``          what the model is for, and for whom
``conveyor.card.limitations``           known limitations, populations it fails on
``conveyor.card.owner``                 who answers for the model
======================================  ==============================================

Metrics per evaluation dataset and slice follow the naming convention approval policies
read too (``accuracy>=0.9@holdout`` checks the key ``holdout/accuracy``): the part of a
metric key after the last ``/`` is the metric, what comes before names the dataset or
slice it was computed on (``holdout/accuracy``, ``holdout/age_65_plus/auc``); a key
without ``/`` is an overall figure.

Datasets go under "Training data" or "Evaluation data" by their input's
``mlflow.data.context`` tag (:data:`EVALUATION_CONTEXTS`, any case). A dataset with no
context or one not in that set counts as training data: a card that lists a holdout set
among the training data is wrong in a way a reader notices, one that hides training data
under evaluation is not.

:func:`save_card` stores each rendering as a new file under the artifact store,
``registry/<name>/versions/<version>/card-<n>.md`` and ``.html``, never overwriting an
older one, so the card shown to an approver last month can still be read. The version's
tags point at the latest card (``conveyor.card.path``, ``conveyor.card.sha256``…) and say
whether it was complete (``conveyor.card.completed``), which approval policies read.

Example::

    from conveyor.registry import RegistryService
    from conveyor.registry.cards import update_card

    saved = update_card(registry, registry.store, "churn", 3, {"owner": "risk-team"})
    print(saved.path, saved.completed)
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import IntegrityError, InvalidInput, NotFound
from conveyor.models import ModelManifest, read_model_manifest
from conveyor.registry._card_render import render_html, render_markdown
from conveyor.registry.lineage import pipeline_origin
from conveyor.store.base import now_ms
from conveyor.store.entities import ArtifactRecord, Run
from conveyor.store.sql.approval_entities import ApprovalRequest
from conveyor.store.sql.approvals import SqlApprovalStore
from conveyor.store.sql.pipeline_records import PipelineRecords
from conveyor.tracking.context import GIT_COMMIT_TAG, GIT_DIRTY_TAG, SOURCE_NAME_TAG

if TYPE_CHECKING:
    from conveyor.registry.service import RegistryService
    from conveyor.store.base import TrackingStore
    from conveyor.store.sql.registry_entities import AliasEvent, ModelVersion

__all__ = [
    "CARD_TAG_PREFIX",
    "EDITABLE_FIELDS",
    "EVALUATION_CONTEXTS",
    "AliasMoveFact",
    "CodeVersion",
    "DatasetFact",
    "MetricFact",
    "ModelCard",
    "PipelineFact",
    "SavedCard",
    "build_card",
    "card_folder",
    "save_card",
    "set_card_fields",
    "update_card",
]

#: Version tags under this prefix belong to the card; the card does not list them as tags.
CARD_TAG_PREFIX = "conveyor.card."
#: The fields a person fills in; each is the version tag ``conveyor.card.<field>``.
EDITABLE_FIELDS = ("intended_use", "limitations", "owner")
PATH_TAG = f"{CARD_TAG_PREFIX}path"
SHA256_TAG = f"{CARD_TAG_PREFIX}sha256"
HTML_PATH_TAG = f"{CARD_TAG_PREFIX}html_path"
HTML_SHA256_TAG = f"{CARD_TAG_PREFIX}html_sha256"
COMPLETED_TAG = f"{CARD_TAG_PREFIX}completed"
_CONTEXT_TAG = "mlflow.data.context"
#: ``mlflow.data.context`` values (lower-cased) that mark a dataset as evaluation data.
EVALUATION_CONTEXTS = frozenset({"evaluation", "eval", "holdout", "test", "testing", "validation", "valid"})
_CARD_FILE = re.compile(r"card-(\d+)\.(?:md|html)$")


@dataclass(frozen=True, slots=True)
class DatasetFact:
    """A dataset the source run consumed, as logged (``digest``: full-content SHA-256)."""

    name: str
    digest: str
    source_type: str
    source: str
    #: ``training``, ``evaluation``… (the input's ``mlflow.data.context`` tag), if given.
    context: str | None
    #: JSON text such as ``{"num_rows": 1000}``, if recorded.
    profile: str | None

    @property
    def is_evaluation(self) -> bool:
        """Whether the context names evaluation data; no or an unknown context means training."""
        return (self.context or "").strip().lower() in EVALUATION_CONTEXTS


@dataclass(frozen=True, slots=True)
class MetricFact:
    """A metric's latest value; ``dataset`` is what precedes the last ``/`` in its key."""

    key: str
    metric: str
    dataset: str | None
    value: float
    step: int


@dataclass(frozen=True, slots=True)
class CodeVersion:
    """The code the model was trained with, from the run's tags (else the pipeline run's)."""

    git_commit: str | None = None
    #: Whether the working tree had uncommitted changes; None when unknown.
    git_dirty: bool | None = None
    #: The entry point (``mlflow.source.name``).
    entry_point: str | None = None


@dataclass(frozen=True, slots=True)
class PipelineFact:
    """The pipeline run the source run belongs to, and its steps with their states."""

    run_id: str
    pipeline: str
    status: str
    #: The step whose child run logged the model; None when the pipeline's own run did.
    step: str | None
    #: ``(node id, state)`` in graph order.
    steps: tuple[tuple[str, str], ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    git_commit: str | None = None
    git_dirty: bool | None = None


@dataclass(frozen=True, slots=True)
class AliasMoveFact:
    """An alias move that pointed an alias at this version or away from it."""

    alias: str
    old_version: int | None
    new_version: int | None
    actor: str
    time: int
    reason: str | None
    approval_id: str | None


@dataclass(frozen=True, slots=True)
class ModelCard:
    """Everything a card shows. Build it with :func:`build_card`; render or store it."""

    name: str
    version: int
    description: str | None
    status: str
    source: str
    created_by: str | None
    creation_time: int
    #: The registered model's owner (who created it), as opposed to ``fields["owner"]``.
    model_owner: str | None
    digest: str | None
    manifest: Mapping[str, Any] | None
    #: The editable fields that are filled in, by name (see :data:`EDITABLE_FIELDS`).
    fields: Mapping[str, str]
    run_id: str | None
    run_name: str | None
    run_found: bool
    params: Mapping[str, str]
    metrics: tuple[MetricFact, ...]
    datasets: tuple[DatasetFact, ...]
    code: CodeVersion
    pipeline: PipelineFact | None
    aliases: tuple[str, ...]
    alias_moves: tuple[AliasMoveFact, ...]
    #: Approval requests naming this version, when the approvals module is installed.
    approvals: tuple[Mapping[str, Any], ...]
    tags: Mapping[str, str]
    generated_time: int

    @property
    def completed(self) -> bool:
        """True when a person has filled in every editable field."""
        return all(self.fields.get(name, "").strip() for name in EDITABLE_FIELDS)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, for ``--json`` and other tools."""
        return {**asdict(self), "uri": self.uri, "completed": self.completed}


@dataclass(frozen=True, slots=True)
class SavedCard:
    """Where :func:`save_card` put a card, and what its bytes hash to."""

    number: int
    #: Markdown and HTML renderings, relative to the artifact root.
    path: str
    sha256: str
    html_path: str
    html_sha256: str
    completed: bool


# -- building ----------------------------------------------------------------------------------


def build_card(
    registry: RegistryService, tracking_store: TrackingStore, name: str, version: int | str
) -> ModelCard:
    """Assemble the card of ``name`` version ``version`` from what the platform recorded.

    A missing source run (purged since registration) does not fail the card: the card
    says so, since that is itself a fact an auditor needs.

    Args:
        registry: Where the version, its aliases and history live.
        tracking_store: Where the source run lives (usually ``registry.store``).

    Raises:
        NotFound: no such model or version, or its files are gone.
        IntegrityError: the version's files no longer match the digest recorded at
            registration; a card must not describe other bytes than the registered ones.
    """
    found = registry.get_version(name, version)
    model = registry.get_model(name)
    run = _source_run(tracking_store, found.run_id)
    pipeline = _pipeline_fact(registry, tracking_store, run)
    return ModelCard(
        name=found.name,
        version=found.version,
        description=found.description,
        status=str(found.status),
        source=found.source,
        created_by=found.created_by,
        creation_time=found.creation_time,
        model_owner=model.owner,
        digest=found.model_digest,
        manifest=_manifest_facts(_manifest(registry, found)),
        fields=card_fields(found),
        run_id=found.run_id,
        run_name=run.info.run_name if run else None,
        run_found=run is not None,
        params=dict(sorted(run.params.items())) if run else {},
        metrics=_metrics(run),
        datasets=_datasets(run),
        code=_code_version(run, pipeline),
        pipeline=pipeline,
        aliases=tuple(found.aliases),
        alias_moves=_alias_moves(registry.alias_history(name), found.version),
        approvals=_approvals(registry, found),
        tags={k: v for k, v in sorted(found.tags.items()) if not k.startswith(CARD_TAG_PREFIX)},
        generated_time=now_ms(),
    )


def card_fields(version: ModelVersion) -> dict[str, str]:
    """The editable fields filled in on ``version``, from its ``conveyor.card.*`` tags."""
    tags = version.tags
    return {f: tags[CARD_TAG_PREFIX + f] for f in EDITABLE_FIELDS if tags.get(CARD_TAG_PREFIX + f)}


def _manifest(registry: RegistryService, version: ModelVersion) -> ModelManifest:
    """The version's manifest, its files verified, and its digest held to the registered one."""
    with tempfile.TemporaryDirectory(prefix="conveyor-card-") as scratch:
        resolved = registry.fetch(version, Path(scratch))
        manifest = read_model_manifest(resolved.folder)
    if version.model_digest and manifest.digest != version.model_digest:
        raise IntegrityError(
            f"Model {version.uri} now has digest {manifest.digest}, but {version.model_digest} was "
            "registered: its files were changed, so no card is written for them"
        )
    return manifest


def _manifest_facts(manifest: ModelManifest) -> dict[str, Any]:
    return {
        "flavor": manifest.flavor,
        "framework": manifest.framework,
        "framework_version": manifest.framework_version,
        "python_version": manifest.python_version,
        "pip_requirements": list(manifest.pip_requirements),
        "signature": manifest.signature.to_dict() if manifest.signature else None,
        "files": {path: entry.sha256 for path, entry in sorted(manifest.files.items())},
        "saved": manifest.created,
    }


def _source_run(store: TrackingStore, run_id: str | None) -> Run | None:
    if run_id is None:
        return None
    try:
        return store.get_run(run_id)
    except NotFound:
        return None


def _metrics(run: Run | None) -> tuple[MetricFact, ...]:
    if run is None:
        return ()
    found = []
    for key, metric in run.metrics.items():
        dataset, _, name = key.rpartition("/")
        found.append(MetricFact(key, name, dataset or None, metric.value, metric.step))
    return tuple(sorted(found, key=lambda m: (m.dataset or "", m.metric)))


def _datasets(run: Run | None) -> tuple[DatasetFact, ...]:
    if run is None:
        return ()
    return tuple(
        DatasetFact(
            name=item.dataset.name,
            digest=item.dataset.digest,
            source_type=item.dataset.source_type,
            source=item.dataset.source,
            context=item.tags.get(_CONTEXT_TAG),
            profile=item.dataset.profile,
        )
        for item in run.inputs
    )


def _code_version(run: Run | None, pipeline: PipelineFact | None) -> CodeVersion:
    """Git facts from the run's tags; a pipeline step's run falls back to its pipeline run's."""
    tags = run.tags if run else {}
    if GIT_COMMIT_TAG in tags:
        dirty = tags.get(GIT_DIRTY_TAG)
        return CodeVersion(
            tags[GIT_COMMIT_TAG], None if dirty is None else dirty == "true", tags.get(SOURCE_NAME_TAG)
        )
    if pipeline is not None and pipeline.git_commit:
        return CodeVersion(pipeline.git_commit, pipeline.git_dirty, tags.get(SOURCE_NAME_TAG))
    return CodeVersion(entry_point=tags.get(SOURCE_NAME_TAG))


def _pipeline_fact(registry: RegistryService, store: TrackingStore, run: Run | None) -> PipelineFact | None:
    """The pipeline run behind ``run``: its own tracking run, or the parent of a step's child run."""
    if run is None:
        return None
    pipeline_run_id, step = pipeline_origin(store, run)
    if pipeline_run_id is None:
        return None
    records = PipelineRecords(registry.store)
    try:
        record = records.get_run(pipeline_run_id)
    except NotFound:
        return PipelineFact(pipeline_run_id, "(not found)", "UNKNOWN", step, ())
    steps = tuple((s.node_id, str(s.status)) for s in records.steps(record.id))
    return PipelineFact(
        record.id,
        record.pipeline,
        str(record.status),
        step,
        steps,
        dict(record.params),
        record.git_commit,
        record.git_dirty,
    )


def _alias_moves(events: list[AliasEvent], version: int) -> tuple[AliasMoveFact, ...]:
    return tuple(
        AliasMoveFact(e.alias, e.old_version, e.new_version, e.actor, e.time, e.reason, e.approval_id)
        for e in events
        if version in (e.old_version, e.new_version)
    )


def _approvals(registry: RegistryService, version: ModelVersion) -> tuple[Mapping[str, Any], ...]:
    """Promotion requests naming the version, newest first, read without side effects.

    Read from the store, not ``ApprovalService.list_requests``, which first marks overdue
    requests EXPIRED: generating a card must not change the registry. A request past its
    expiry may therefore still show PENDING here.
    """
    requests = SqlApprovalStore(registry.store).list_requests(model=version.name)
    return tuple(_approval_row(r) for r in requests if r.version == version.version)


def _approval_row(request: ApprovalRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "alias": request.alias,
        "status": str(request.status),
        "requested_by": request.requested_by,
        "requested_at": request.requested_at,
        "reason": request.reason,
        "decided_by": request.decided_by,
        "decided_at": request.decided_at,
        "decision_reason": request.decision_reason,
        "evidence_passed": all(check.get("passed") for check in request.evidence),
    }


# -- editing and storing -----------------------------------------------------------------------


def set_card_fields(
    registry: RegistryService,
    name: str,
    version: int | str,
    fields: Mapping[str, str],
    *,
    actor: str | None = None,
) -> dict[str, str]:
    """Fill in (or, with an empty value, clear) the card's editable fields.

    They are version tags, so each change is audited like any registry mutation, and
    they may change after registration although the version itself cannot. The stored
    card is not touched: save a new one (:func:`update_card` does both).

    Returns:
        The fields filled in afterwards.

    Raises:
        InvalidInput: a field other than those in :data:`EDITABLE_FIELDS`.
        NotFound: no such model or version.
    """
    if unknown := sorted(set(fields) - set(EDITABLE_FIELDS)):
        raise InvalidInput(
            f"Unknown model card field(s) {', '.join(unknown)}: the editable fields are "
            f"{', '.join(EDITABLE_FIELDS)}"
        )
    current = registry.get_version(name, version)
    for key, value in fields.items():
        tag = CARD_TAG_PREFIX + key
        if value.strip():
            registry.set_version_tag(name, version, tag, value, actor=actor)
        elif tag in current.tags:
            registry.delete_version_tag(name, version, tag, actor=actor)
    return card_fields(registry.get_version(name, version))


def card_folder(name: str, version: int) -> str:
    """``registry/<name>/versions/<version>``: where a version's cards are stored.

    Raises:
        InvalidInput: a model name that is not a safe path segment (``.``, ``..``).
    """
    if name in (".", ".."):
        raise InvalidInput(f"Model name {name!r} cannot name a folder: rename the model to store its card")
    return f"registry/{name}/versions/{version}"


def save_card(registry: RegistryService, card: ModelCard, *, actor: str | None = None) -> SavedCard:
    """Store ``card`` as Markdown and HTML in the next free ``card-<n>`` slot; point the tags at it.

    Older cards are kept: the one an approver read stays readable, by the path the
    audit trail of the tags recorded. Each file is also entered in the artifact index
    with its SHA-256, so reading it back can be verified.

    Raises:
        NotFound: the version was deleted meanwhile.
        BackendUnavailable, PermissionDenied: the artifact store refused the write.
    """
    folder = card_folder(card.name, card.version)
    number = _next_number(registry, folder)
    md_path, md_sha = _write(registry, f"{folder}/card-{number}.md", render_markdown(card))
    html_path, html_sha = _write(registry, f"{folder}/card-{number}.html", render_html(card))
    saved = SavedCard(number, md_path, md_sha, html_path, html_sha, card.completed)
    tags = {
        PATH_TAG: md_path,
        SHA256_TAG: md_sha,
        HTML_PATH_TAG: html_path,
        HTML_SHA256_TAG: html_sha,
        COMPLETED_TAG: "true" if saved.completed else "false",
    }
    for key, value in tags.items():
        registry.set_version_tag(card.name, card.version, key, value, actor=actor)
    return saved


def update_card(
    registry: RegistryService,
    tracking_store: TrackingStore,
    name: str,
    version: int | str,
    fields: Mapping[str, str] | None = None,
    *,
    actor: str | None = None,
) -> SavedCard:
    """Set the editable ``fields`` (if any), then build and store a new card: the usual path.

    Raises:
        What :func:`set_card_fields`, :func:`build_card` and :func:`save_card` raise.
    """
    if fields:
        set_card_fields(registry, name, version, fields, actor=actor)
    return save_card(registry, build_card(registry, tracking_store, name, version), actor=actor)


def _next_number(registry: RegistryService, folder: str) -> int:
    """One more than the highest card number stored for the version (1 for the first)."""
    numbers = [0]
    for record in registry.store.list_artifact_records(f"{folder}/card-"):
        if match := _CARD_FILE.search(record.path):
            numbers.append(int(match[1]))
    return max(numbers) + 1


def _write(registry: RegistryService, path: str, text: str) -> tuple[str, str]:
    """Write ``text`` at ``path`` (refusing to replace a file) and index it; ``(path, sha256)``."""
    if registry.artifacts.exists(path):
        raise InvalidInput(f"Model card {path} already exists; another save is under way, try again")
    size, sha256 = registry.artifacts.write_bytes(path, text.encode("utf-8"))
    registry.store.record_artifact(ArtifactRecord(path, size, sha256, None, now_ms()))
    return path, sha256
