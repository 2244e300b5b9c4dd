"""The errors of the serving data path, each with its HTTP status, and their one JSON body.

Both protocols answer every error with the same body::

    {"error": "<message>", "details": [{"field": "age", "problem": "type", "message": "..."}],
     "request_id": "...", "error_code": "...", "message": "<message>"}

``error`` is what Open Inference Protocol clients (``tritonclient``) read; ``error_code``
and ``message`` are MLflow's error shape, for MLflow's clients; ``details`` lists every
field-level problem found (validation looks at the whole request, not at the first
column that fails). A failure inside ``predict`` is answered without its traceback:
the message gives the request id to find the logged traceback by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.errors import BackendUnavailable, ConveyorError, InvalidInput, NotFound

__all__ = [
    "FieldProblem",
    "ModelNotFound",
    "ModelNotReady",
    "PayloadTooLarge",
    "PredictFailed",
    "PredictTimeout",
    "RequestRejected",
    "UnsupportedMediaType",
    "error_body",
]

#: The ``problem`` codes of :class:`FieldProblem`, also the values of the metric label.
PROBLEMS = ("missing", "unknown", "type", "shape", "nan", "empty", "format")


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """What is wrong with one field (a column or tensor) of a request."""

    #: Column or tensor name; ``""`` for the request as a whole.
    field: str
    #: One of :data:`PROBLEMS`.
    problem: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem, "message": self.message}


class RequestRejected(InvalidInput):
    """A malformed request, or one that does not fit the signature (400), with every problem found."""

    headline = "Invalid request"
    error_code = "BAD_REQUEST"

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems = tuple(problems)
        first = "; ".join(p.message for p in self.problems[:3])
        more = f" (and {len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
        super().__init__(f"Invalid request: {first}{more}")

    @classmethod
    def one(cls, field: str, problem: str, message: str) -> RequestRejected:
        return cls([FieldProblem(field, problem, message)])


class UnsupportedMediaType(InvalidInput):
    headline = "Unsupported media type"
    error_code = "BAD_REQUEST"
    http_status = 415


class PayloadTooLarge(InvalidInput):
    headline = "Payload too large"
    error_code = "REQUEST_LIMIT_EXCEEDED"
    http_status = 413


class ModelNotFound(NotFound):
    headline = "Model not found"


class ModelNotReady(BackendUnavailable):
    """The model (or the version asked for) is still loading."""

    headline = "Model not ready"


class PredictTimeout(ConveyorError):
    headline = "Timeout"
    error_code = "DEADLINE_EXCEEDED"
    http_status = 504


class PredictFailed(ConveyorError):
    """The model raised inside ``predict``; the traceback is logged, never sent."""

    headline = "Prediction failed"
    error_code = "INTERNAL_ERROR"
    http_status = 500


def error_body(error: ConveyorError, request_id: str | None) -> dict[str, Any]:
    """The JSON body for ``error``; see the module docstring."""
    problems = getattr(error, "problems", ())
    return {
        "error": error.message,
        "details": [p.to_json() for p in problems],
        "request_id": request_id,
        "error_code": error.error_code,
        "message": error.message,
    }
