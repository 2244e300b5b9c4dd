"""The evidence a policy asks for, checked against what the platform recorded.

Each check becomes a JSON-able dict (what was asked, what was found, whether it passed),
stored with the request as its snapshot, so an auditor later sees the values the approval
relied on, not today's. Sources:

- metric thresholds: the latest value of ``<dataset>/<metric>`` (or ``<metric>``) in the
  version's source run;
- a completed model card: the version tag ``conveyor.card.completed=true``;
- a passed validation step: a pipeline run that logged to the source run, whose step of
  that name SUCCEEDED (or was CACHED from a run where it did);
- a reproducible source run: the ``conveyor.repro.*`` record on the source run, graded
  again by today's rules (:func:`conveyor.tracking.reproducibility.grade`), must be ``A``.
"""

from __future__ import annotations

from typing import Any

from conveyor.errors import NotFound
from conveyor.store.entities import Run
from conveyor.store.sql.approval_entities import CARD_COMPLETED_TAG, AliasPolicy, MetricThreshold
from conveyor.store.sql.approvals import SqlApprovalStore
from conveyor.store.sql.registry_entities import ModelVersion
from conveyor.tracking import reproducibility

_PASSED_STEP_STATES = frozenset({"SUCCEEDED", "CACHED"})


def source_run(records: SqlApprovalStore, version: ModelVersion) -> Run | None:
    """The run that produced the version, or None (registered from a folder, or deleted)."""
    if version.run_id is None:
        return None
    try:
        return records.store.get_run(version.run_id)
    except NotFound:
        return None


def evaluate(
    policy: AliasPolicy, version: ModelVersion, run: Run | None, records: SqlApprovalStore
) -> list[dict[str, Any]]:
    """Every check ``policy`` asks for, with the value found and whether it passed."""
    checks = [_metric(threshold, run) for threshold in policy.metrics]
    if policy.require_model_card:
        found = version.tags.get(CARD_COMPLETED_TAG)
        checks.append(
            {"check": "model_card", "tag": CARD_COMPLETED_TAG, "value": found, "passed": found == "true"}
        )
    if policy.require_validation_step:
        checks.append(_step(policy.require_validation_step, version, records))
    if policy.require_reproducible:
        checks.append(_reproducible(run))
    return checks


def failures(checks: list[dict[str, Any]]) -> list[str]:
    """One sentence per failed check, naming the value found."""
    return [_explain(check) for check in checks if not check["passed"]]


def _metric(threshold: MetricThreshold, run: Run | None) -> dict[str, Any]:
    point = None if run is None else run.metrics.get(threshold.key)
    value = None if point is None else point.value
    return {
        "check": "metric",
        "metric": threshold.metric,
        "op": threshold.op,
        "threshold": threshold.value,
        "dataset": threshold.dataset,
        "key": threshold.key,
        "run_id": None if run is None else run.info.run_id,
        "value": value,
        "passed": threshold.passes(value),
    }


def _step(step: str, version: ModelVersion, records: SqlApprovalStore) -> dict[str, Any]:
    states = [] if version.run_id is None else records.validation_step_states(version.run_id, step)
    passed = bool(states) and all(state in _PASSED_STEP_STATES for state in states)
    return {"check": "validation_step", "step": step, "states": states, "passed": passed}


def _reproducible(run: Run | None) -> dict[str, Any]:
    record = None if run is None else reproducibility.record_from_tags(run.tags)
    letter, reasons = reproducibility.grade(record) if record else (None, ["no reproducibility record"])
    return {
        "check": "reproducible",
        "run_id": None if run is None else run.info.run_id,
        "grade": letter,
        "reasons": reasons,
        "passed": letter == "A",
    }


def _explain(check: dict[str, Any]) -> str:
    if check["check"] == "metric":
        need = MetricThreshold(check["metric"], check["op"], check["threshold"], check["dataset"])
        if check["run_id"] is None:
            return f"{need}: the version has no source run to read metric {check['key']!r} from"
        if check["value"] is None:
            return f"{need}: run {check['run_id']} logged no metric {check['key']!r}"
        return f"{need}: run {check['run_id']} logged {check['key']} = {check['value']:g}"
    if check["check"] == "model_card":
        return (
            f"a completed model card: version tag {CARD_COMPLETED_TAG} is {check['value']!r}, not 'true' "
            "(complete the card with `conveyor registry card`)"
        )
    if check["check"] == "reproducible":
        if check["run_id"] is None:
            return "a reproducible source run (grade A): the version has no source run"
        found = f"run {check['run_id']} has grade {check['grade'] or 'none'}"
        return f"a reproducible source run (grade A): {found}: " + ", ".join(check["reasons"])
    states = ", ".join(check["states"]) or "no pipeline run of the source run has it"
    return f"validation step {check['step']!r} must have succeeded: {states}"
