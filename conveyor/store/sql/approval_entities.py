"""What approvals store: alias policies, promotion requests, and the evidence rules.

Plain frozen dataclasses and pure functions, shared by the SQL store, the service, the
REST routes and the CLI. The built-in policy lives here too: without a stored policy,
``champion`` and ``production`` are protected for every model and need no evidence.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from conveyor.errors import InvalidInput

#: Aliases protected for every model unless a policy says otherwise.
PROTECTED_BY_DEFAULT = frozenset({"champion", "production"})
#: The scope of a policy that applies to every model without one of its own.
ALL_MODELS = "*"
DEFAULT_EXPIRY_HOURS = 72
#: The version tag the model-card workflow sets when a card is complete.
CARD_COMPLETED_TAG = "conveyor.card.completed"

_OPS: Mapping[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_THRESHOLD = re.compile(
    r"^\s*(?P<metric>[^<>=@\s]+)\s*(?P<op>>=|<=|>|<)\s*(?P<value>[^@\s]+)\s*(@\s*(?P<dataset>\S+))?\s*$"
)


class ApprovalStatus(StrEnum):
    """A request's life: PENDING, then APPROVED → APPLIED, or REJECTED, or EXPIRED."""

    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    #: The alias move it allowed was made; an approval is used once.
    APPLIED = "APPLIED"


@dataclass(frozen=True, slots=True)
class MetricThreshold:
    """``metric op value`` on an evaluation dataset, e.g. accuracy >= 0.9 on holdout.

    The run logs a dataset's metric under ``<dataset>/<metric>`` (``holdout/accuracy``);
    without a dataset, under ``<metric>``.
    """

    metric: str
    op: str
    value: float
    dataset: str | None = None

    @property
    def key(self) -> str:
        return self.metric if self.dataset is None else f"{self.dataset}/{self.metric}"

    def passes(self, found: float | None) -> bool:
        return found is not None and not math.isnan(found) and _OPS[self.op](found, self.value)

    def __str__(self) -> str:
        where = f" on {self.dataset}" if self.dataset else ""
        return f"{self.metric} {self.op} {self.value:g}{where}"

    @classmethod
    def parse(cls, text: str) -> MetricThreshold:
        """``accuracy>=0.9@holdout`` (the CLI's form).

        Raises:
            InvalidInput: not of that form; the message shows one that is.
        """
        match = _THRESHOLD.match(text)
        try:
            value = float(match["value"]) if match else math.nan
        except ValueError:
            value = math.nan
        if match is None or math.isnan(value):
            raise InvalidInput(
                f"Invalid metric threshold {text!r}: write METRIC OP VALUE[@DATASET] with OP one of "
                ">=, >, <=, <, e.g. accuracy>=0.9@holdout"
            )
        return cls(match["metric"], match["op"], value, match["dataset"])

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricThreshold:
        """Raises: InvalidInput for an unknown operator or a value that is not a number."""
        op = data.get("op")
        if op not in _OPS:
            raise InvalidInput(f"Invalid metric threshold operator {op!r}: one of {', '.join(_OPS)}")
        try:
            return cls(str(data["metric"]), str(op), float(data["value"]), data.get("dataset"))
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(
                f"Invalid metric threshold {dict(data)!r}: needs metric, op and a numeric value"
            ) from None


@dataclass(frozen=True, slots=True)
class AliasPolicy:
    """What moving ``alias`` of ``model`` (a name, or ``*`` for every model) needs."""

    model: str
    alias: str
    protected: bool
    metrics: tuple[MetricThreshold, ...] = ()
    require_model_card: bool = False
    #: A pipeline step that must have succeeded in the run that produced the version.
    require_validation_step: str | None = None
    #: The source run's reproducibility grade must be A (``conveyor.repro.grade``).
    require_reproducible: bool = False
    expiry_hours: int = DEFAULT_EXPIRY_HOURS
    #: Who stored it; None for the built-in default.
    updated_by: str | None = None
    updated_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "metrics": [asdict(m) for m in self.metrics]}


def builtin_policy(model: str, alias: str) -> AliasPolicy:
    """The policy in force where none is stored: see :data:`PROTECTED_BY_DEFAULT`."""
    return AliasPolicy(model, alias, protected=alias in PROTECTED_BY_DEFAULT)


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A request to point ``alias`` at ``version``; rows are kept whatever their fate."""

    id: str
    model_name: str
    version: int
    alias: str
    reason: str
    requested_by: str
    requested_at: int
    status: ApprovalStatus
    expires_at: int
    #: The checks the policy asked for, with the values found (at request, then approval).
    evidence: list[dict[str, Any]] = field(default_factory=list)
    decided_by: str | None = None
    decided_at: int | None = None
    decision_reason: str | None = None
    applied_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
