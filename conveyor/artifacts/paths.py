"""Artifact paths: the one gate every relative path passes before it reaches storage.

An artifact path arrives from users, REST requests and MLflow clients, and is then
appended to a root that may be a local folder or a blob container. Anything that could
climb out of that root, or mean different things on different back ends, is rejected
here, once, so no back end has to think about it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from conveyor.errors import InvalidInput

__all__ = ["join", "safe_relpath"]

#: ASCII control characters (NUL included): never part of a sane file name, and a
#: newline in a path is a header-injection vector once it is echoed into a response.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: ``C:`` or ``c:foo``: a Windows drive, absolute or drive-relative.
_DRIVE = re.compile(r"^[A-Za-z]:")
#: How many rounds of percent-decoding to look through (``%252e`` decodes twice).
_DECODE_ROUNDS = 3


def safe_relpath(path: str) -> str:
    """Return ``path`` as a normalised relative POSIX path, or raise.

    Why: the path is joined onto an artifact root, so ``..``, absolute paths and their
    disguises (backslashes, drive letters, percent-encoded separators or dots, NUL)
    would let a caller read or overwrite files outside that root. The check is done on
    the path as given and on every percent-decoded form of it, because a proxy or a
    later layer may decode it again.

    ``.`` segments are dropped (``./a/./b`` becomes ``a/b``); nothing else is rewritten,
    so a path that is accepted names exactly the file the caller meant.

    Args:
        path: A ``/``-separated path relative to an artifact root.

    Returns:
        The normalised path, never empty, never starting or ending with ``/``.

    Raises:
        InvalidInput: the message starts with ``Invalid path`` (MLflow's wording).
    """
    if not isinstance(path, str):
        raise InvalidInput(f"Invalid path {path!r}: expected a string, got {type(path).__name__}")
    forms = _decoded_forms(path)
    for form in forms:
        _check_plain(path, form)
    if any(_shape(form) != _shape(path) for form in forms[1:]):
        raise _invalid(path, "percent-encoded '/' or '.' segments are not allowed")
    return "/".join(seg for seg in path.split("/") if seg != ".")


def join(*parts: str) -> str:
    """Join path pieces with ``/`` and check the result with :func:`safe_relpath`.

    Empty pieces are skipped, so ``join(prefix, name)`` works when ``prefix`` is ``""``.

    Raises:
        InvalidInput: the joined path is empty or unsafe.
    """
    for part in parts:
        if not isinstance(part, str):
            raise InvalidInput(f"Invalid path piece {part!r}: expected a string")
    return safe_relpath("/".join(part for part in parts if part))


def _decoded_forms(path: str) -> list[str]:
    """``path`` followed by each distinct result of decoding it once more."""
    forms = [path]
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(forms[-1]) if "%" in forms[-1] else forms[-1]
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    return forms


def _shape(form: str) -> tuple[int, int]:
    """Separators and ``.`` segments: what decoding must not change."""
    return form.count("/"), form.split("/").count(".")


def _check_plain(original: str, form: str) -> None:
    """Reject ``form`` (``original`` or a decoding of it) if it is not a plain relative path."""
    if not form:
        raise _invalid(original, "the path is empty")
    if _CONTROL.search(form):
        raise _invalid(original, "control characters (such as NUL) are not allowed")
    if "\\" in form:
        raise _invalid(original, "backslashes are not allowed; use '/'")
    if form.startswith("/") or _DRIVE.match(form):
        raise _invalid(original, "the path must be relative")
    segments = form.split("/")
    if ".." in segments:
        raise _invalid(original, "'..' segments are not allowed")
    if "" in segments:
        raise _invalid(original, "empty segments ('//' or a trailing '/') are not allowed")
    if all(seg == "." for seg in segments):
        raise _invalid(original, "the path names the root itself")


def _invalid(path: str, reason: str) -> InvalidInput:
    return InvalidInput(f"Invalid path {path!r}: {reason}")
