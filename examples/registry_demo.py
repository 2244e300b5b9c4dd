"""``make demo``, part two: register the pipeline's best model and promote it under four eyes.

Run after ``examples/pipeline.py``; reads the store ``CONVEYOR_HOME`` names::

    conveyor pipeline run examples/pipeline.py
    python examples/registry_demo.py

1. As ``data-scientist``: take the model ``pick_best`` chose in the latest successful
   ``breast_cancer`` run, log it as a packaged model (its input example gives it a
   signature) in a run that also holds its ``holdout/*`` metrics, register it as
   ``breast-cancer``, fill in the model card and store it.
2. Still as ``data-scientist``: request that ``champion`` point at the new version. As
   ``model-validator``: approve; the alias moves. Neither may do the other's part: the
   requester and the run's author cannot approve (``docs/governance.md``).
3. Print the version, its digest, the approval, the alias history, the card's path and
   whether the audit log's hash chain verifies.

Locally, Conveyor takes the acting user from the OS (``getpass.getuser()``, which reads
``LOGNAME`` first); the demo sets it per step to play two people on one machine.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

import conveyor
from conveyor.config import Settings
from conveyor.errors import AlreadyExists
from conveyor.models import log_model
from conveyor.pipelines.runner import load_output, open_records
from conveyor.registry import ApprovalService, RegistryService
from conveyor.registry.cards import update_card
from conveyor.store.sql.audit import AuditLog

PIPELINE, MODEL, ALIAS = "breast_cancer", "breast-cancer", "champion"
DATA_SCIENTIST, VALIDATOR = "data-scientist", "model-validator"
CARD = {
    "intended_use": "Demo only: flag breast-tumour measurements as benign (1) or malignant (0).",
    "owner": DATA_SCIENTIST,
    "limitations": "Expects the features standardised as the pipeline's featurize step does; "
    "trained and tested on scikit-learn's 569 bundled tumours only, never on a clinical population.",
}


@contextlib.contextmanager
def acting_as(user: str) -> Iterator[None]:
    """Make Conveyor see ``user`` as the OS user, as a second login on the machine would."""
    saved = {name: os.environ.get(name) for name in ("LOGNAME", "USER")}
    os.environ.update(dict.fromkeys(saved, user))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def best_model(settings: Settings) -> tuple[Any, Any, Any, dict[str, Any], str | None]:
    """The model ``pick_best`` chose, the scaled train and test sets, its choice, the pipeline's run."""
    records = open_records(settings)
    try:
        runs = records.list_runs(PIPELINE, "SUCCEEDED", limit=1)
        if not runs:
            sys.exit(f"No successful {PIPELINE} run: run `conveyor pipeline run examples/pipeline.py` first.")
        steps = {step.node_id: step for step in records.steps(runs[0].id)}
        best = load_output(steps["pick_best"], settings)
        chosen = runs[0].params["grid"].index(best["config"])
        model = load_output(steps["train"], settings)[chosen]
        train, test = load_output(steps["featurize"], settings)
    finally:
        records.store.close()
    return model, train, test, best, runs[0].tracking_run_id


def log_and_register(registry: RegistryService, settings: Settings) -> int:
    """Package the best model in a run of its own, with holdout metrics; register it; store its card."""
    model, train, test, best, pipeline_run = best_model(settings)
    x, y = test.drop(columns=["target"]), test["target"]
    predicted = model.predict(x)
    conveyor.set_experiment(PIPELINE)
    # A child of the pipeline's run, tagged with the step that trained the model, so the
    # card and `conveyor lineage` trace the version back to the pipeline run.
    lineage = {"mlflow.parentRunId": pipeline_run, "conveyor.pipeline.step": "train"} if pipeline_run else {}
    with conveyor.start_run(run_name="register-best", tags=lineage) as run:
        conveyor.log_params(best["config"])
        source = f"pipeline {PIPELINE}, step featurize"
        conveyor.log_input(train, name="breast_cancer_train", source=source, context="training")
        conveyor.log_input(test, name="breast_cancer_holdout", source=source, context="holdout")
        conveyor.log_metrics(
            {
                "holdout/accuracy": float(accuracy_score(y, predicted)),
                "holdout/f1": float(f1_score(y, predicted)),
                "holdout/roc_auc": float(roc_auc_score(y, model.predict_proba(x)[:, 1])),
            }
        )
        log_model(model, "model", input_example=x.head(5))
    with contextlib.suppress(AlreadyExists):  # a second `make demo` adds a version
        registry.create_model(MODEL, description="Breast-cancer classifier from examples/pipeline.py")
    version = registry.create_version(MODEL, f"runs:/{run.run.info.run_id}/model").version
    # Complete and stored before the request, so the validator has a card to review.
    update_card(registry, registry.store, MODEL, version, CARD)
    return version


def main() -> int:
    settings = Settings()
    registry = RegistryService.from_settings(settings)
    approvals = ApprovalService(registry)
    try:
        with acting_as(DATA_SCIENTIST):
            version = log_and_register(registry, settings)
            request = approvals.request_promotion(
                MODEL, version, ALIAS, "best test ROC AUC of the breast_cancer sweep"
            )
        with acting_as(VALIDATOR):
            decided = approvals.approve(request.id, "holdout metrics and model card reviewed")
            # Stored again, so the card also shows the approval and the alias move.
            card = update_card(registry, registry.store, MODEL, version)
        found = registry.get_version(MODEL, version)
        print(f"\nRegistered models:/{MODEL}/{version}  digest {found.model_digest}")
        print(
            f"  requested by {decided.requested_by}, approved by {decided.decided_by}: approval {decided.id}"
        )
        print(f"\nconveyor registry history {MODEL} --alias {ALIAS}")
        for event in registry.alias_history(MODEL, ALIAS):
            moved = f"{event.old_version or '-'} -> {event.new_version}"
            print(f"  @{event.alias} {moved}  by {event.actor}  approval {event.approval_id}")
        print(f"\nModel card: {Path(settings.resolved_artifact_root()) / card.path}")
        print(f"  (again with `conveyor registry card {MODEL} {version}`)")
        result = AuditLog(registry.store).verify()
        if not result.ok:
            print(f"\nconveyor audit verify: FAILED at record {result.broken.seq}: {result.broken.reason}")
            return 1
        print(f"\nconveyor audit verify: {result.records} records, head {result.head_hash}@{result.head_seq}")
    finally:
        registry.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
