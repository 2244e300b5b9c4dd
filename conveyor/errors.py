"""Every error Conveyor raises on purpose, in one tree.

::

    ConveyorError
    ├── InvalidInput (ValueError)          400  INVALID_PARAMETER_VALUE
    ├── NotFound (LookupError)             404  RESOURCE_DOES_NOT_EXIST
    │   ├── ExperimentNotFound
    │   ├── RunNotFound
    │   └── ArtifactNotFound
    ├── AlreadyExists                      400  RESOURCE_ALREADY_EXISTS (MLflow's status)
    ├── Conflict                           409  RESOURCE_CONFLICT
    │   └── InvalidState                   400  INVALID_PARAMETER_VALUE (as MLflow)
    ├── IntegrityError                     500  DATA_LOSS
    ├── Unauthenticated                    401  UNAUTHENTICATED
    ├── PermissionDenied                   403  PERMISSION_DENIED
    └── BackendUnavailable                 503  TEMPORARILY_UNAVAILABLE

The wire code and HTTP status belong to the class, so the server turns any of them into
a response in one place and the REST client turns ``{"error_code", "message"}`` back
into the same class. Each class also inherits the matching built-in so that plain
``except ValueError`` / ``except LookupError`` keep working.

Example::

    try:
        client.get_run(run_id)
    except RunNotFound:
        ...
"""

from __future__ import annotations

from typing import ClassVar


class ConveyorError(Exception):
    """Root of all deliberate Conveyor errors."""

    #: Short title the CLI prints in bold above the message.
    headline: ClassVar[str] = "Conveyor error"
    #: MLflow-compatible error code sent on the wire.
    error_code: ClassVar[str] = "INTERNAL_ERROR"
    #: HTTP status the server answers with.
    http_status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, str]:
        """MLflow's error body plus ``kind``, which MLflow clients ignore and ours reads."""
        return {"error_code": self.error_code, "message": self.message, "kind": type(self).__name__}


class InvalidInput(ConveyorError, ValueError):
    headline = "Invalid input"
    error_code = "INVALID_PARAMETER_VALUE"
    http_status = 400


class NotFound(ConveyorError, LookupError):
    headline = "Not found"
    error_code = "RESOURCE_DOES_NOT_EXIST"
    http_status = 404


class ExperimentNotFound(NotFound):
    headline = "Experiment not found"


class RunNotFound(NotFound):
    headline = "Run not found"


class ArtifactNotFound(NotFound):
    headline = "Artifact not found"


class AlreadyExists(ConveyorError):
    """A name that must be unique is taken; MLflow answers this with 400, so do we."""

    headline = "Already exists"
    error_code = "RESOURCE_ALREADY_EXISTS"
    http_status = 400


class Conflict(ConveyorError):
    headline = "Conflict"
    error_code = "RESOURCE_CONFLICT"
    http_status = 409


class InvalidState(Conflict):
    """The target exists but its state forbids the change (a deleted or finished run).

    On the wire it is MLflow's ``INVALID_PARAMETER_VALUE`` (what MLflow answers for writes
    to a deleted run); Conveyor's client tells it apart by the body's ``kind``.
    """

    headline = "Invalid state"
    error_code = "INVALID_PARAMETER_VALUE"
    http_status = 400


class IntegrityError(ConveyorError):
    """Stored bytes no longer match the hash recorded when they were written."""

    headline = "Integrity check failed"
    error_code = "DATA_LOSS"
    http_status = 500


class Unauthenticated(ConveyorError, PermissionError):
    """No credentials, or credentials that prove nothing (unknown, expired, revoked, wrong).

    The server answers 401 with a ``WWW-Authenticate`` challenge; MLflow clients raise
    ``RestException`` with code ``UNAUTHENTICATED``.
    """

    headline = "Not signed in"
    error_code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDenied(ConveyorError, PermissionError):
    """The caller is known but holds no role that grants the permission the action needs."""

    headline = "Permission denied"
    error_code = "PERMISSION_DENIED"
    http_status = 403


class BackendUnavailable(ConveyorError, ConnectionError):
    headline = "Back end unavailable"
    error_code = "TEMPORARILY_UNAVAILABLE"
    http_status = 503


_BY_CODE: dict[str, type[ConveyorError]] = {
    cls.error_code: cls
    for cls in (
        InvalidInput,
        NotFound,
        AlreadyExists,
        Conflict,
        IntegrityError,
        Unauthenticated,
        PermissionDenied,
        BackendUnavailable,
    )
}

#: Subclasses that share a wire code with another class, told apart by ``kind``.
_BY_KIND: dict[str, type[ConveyorError]] = {
    cls.__name__: cls for cls in (ExperimentNotFound, RunNotFound, ArtifactNotFound, InvalidState)
}


def error_from_json(body: dict[str, object], status: int) -> ConveyorError:
    """Rebuild the error the server raised from its JSON body, most specific class first."""
    message = str(body.get("message", f"HTTP {status}"))
    kind = body.get("kind")
    if isinstance(kind, str) and kind in _BY_KIND:
        return _BY_KIND[kind](message)
    code = body.get("error_code")
    if isinstance(code, str) and code in _BY_CODE:
        return _BY_CODE[code](message)
    if status == 404:
        return NotFound(message)
    if 400 <= status < 500:
        return InvalidInput(message)
    if status == 503:
        return BackendUnavailable(message)
    return ConveyorError(message)
