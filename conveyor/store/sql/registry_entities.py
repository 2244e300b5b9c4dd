"""What the model registry stores, and the input rules it enforces (MLflow's, where it has them).

The entities are plain frozen dataclasses; the rules raise
:class:`~conveyor.errors.InvalidInput` with MLflow's wording where MLflow clients or users
may rely on it (reserved aliases, alias characters and length).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from conveyor.errors import InvalidInput
from conveyor.store import validation as v

MAX_MODEL_NAME_LENGTH = 256
MAX_ALIAS_LENGTH = 255
MAX_TAG_VALUE_LENGTH = 5000
MAX_DESCRIPTION_LENGTH = 65_535
MAX_REASON_LENGTH = 2000
DEFAULT_MODEL_RESULTS = 100
MAX_MODEL_RESULTS = 1000
DEFAULT_VERSION_RESULTS = 1000
MAX_VERSION_RESULTS = 200_000

_ALIAS = re.compile(r"^[\w\-]*$")
_VERSION_ALIAS = re.compile(r"^v\d+$", re.IGNORECASE)
#: Characters a name may not hold: they would make ``models:/<name>/<version>`` ambiguous.
_NAME_FORBIDDEN = re.compile(r"[/@:%\x00-\x1f]")


class VersionStatus(StrEnum):
    READY = "READY"
    PENDING_REGISTRATION = "PENDING_REGISTRATION"
    FAILED_REGISTRATION = "FAILED_REGISTRATION"


class Stage(StrEnum):
    """MLflow's deprecated stages, kept for its clients; aliases replace them."""

    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered version. ``source``, ``run_id`` and ``model_digest`` never change."""

    name: str
    version: int
    source: str
    status: VersionStatus
    current_stage: Stage
    creation_time: int
    last_updated_time: int
    run_id: str | None = None
    run_link: str | None = None
    #: SHA-256 of the model's files and metadata; ``load`` refuses bytes that differ.
    model_digest: str | None = None
    status_message: str | None = None
    description: str | None = None
    created_by: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    name: str
    creation_time: int
    last_updated_time: int
    description: str | None = None
    owner: str | None = None
    workspace: str = "default"
    tags: dict[str, str] = field(default_factory=dict)
    #: alias -> version number.
    aliases: dict[str, int] = field(default_factory=dict)
    #: The newest version in each stage (MLflow's ``latest_versions``).
    latest_versions: tuple[ModelVersion, ...] = ()


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One move of an alias: set (``old_version`` None), moved, or removed (``new_version`` None)."""

    id: int
    model_name: str
    alias: str
    old_version: int | None
    new_version: int | None
    actor: str
    time: int
    reason: str | None = None
    approval_id: str | None = None
    #: The audit record written with the move.
    audit_seq: int | None = None


@dataclass(frozen=True, slots=True)
class AliasMove:
    """A requested alias move, as guards see it before it is written (see ``AliasGuard``).

    ``old_version`` is read while the model's row is locked, so a guard that approves it
    approves exactly the transition that will be recorded.
    """

    model_name: str
    alias: str
    old_version: int | None
    #: None removes the alias.
    new_version: int | None
    actor: str
    reason: str | None = None
    approval_id: str | None = None


# -- rules -----------------------------------------------------------------------------------


def check_model_name(name: object, parameter: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(
            f"Missing value for required parameter '{parameter}'. Registered model name cannot be empty."
        )
    if len(name) > MAX_MODEL_NAME_LENGTH:
        raise InvalidInput(
            f"Registered model name '{name[:40]}...' is {len(name)} characters long, "
            f"at most {MAX_MODEL_NAME_LENGTH} are allowed"
        )
    if _NAME_FORBIDDEN.search(name) or name != name.strip():
        raise InvalidInput(
            f"Invalid registered model name {name!r}: it may not contain '/', '@', ':', '%', "
            "control characters, or leading or trailing spaces (it is part of models:/ URIs)"
        )
    return name


def check_alias(alias: object) -> str:
    """MLflow's alias rules: ``[\\w-]``, at most 255 characters, ``latest`` and ``v<n>`` reserved."""
    if not isinstance(alias, str) or alias == "":
        raise InvalidInput("Registered model alias name cannot be empty.")
    if not _ALIAS.match(alias):
        raise InvalidInput(
            f"Invalid alias name: '{alias}'. Names may only contain alphanumerics, "
            "underscores (_), and dashes (-)."
        )
    if len(alias) > MAX_ALIAS_LENGTH:
        raise InvalidInput(
            f"Registered model alias name '{alias[:40]}...' exceeds the maximum length of "
            f"{MAX_ALIAS_LENGTH} characters"
        )
    if alias.lower() == "latest":
        raise InvalidInput("'latest' alias name (case insensitive) is reserved.")
    if _VERSION_ALIAS.match(alias):
        raise InvalidInput(f"Version alias name '{alias}' is reserved.")
    return alias


def check_version(version: object) -> int:
    """A version number as MLflow clients send it: an int or a string of digits."""
    text = str(version) if isinstance(version, int) and not isinstance(version, bool) else version
    if not isinstance(text, str) or not text.isdigit() or int(text) < 1:
        raise InvalidInput(
            f"Invalid value {version!r} for parameter 'version' supplied: expected a positive integer"
        )
    return int(text)


def check_stage(stage: object) -> Stage:
    """A stage name; MLflow accepts any case here and stores the canonical one."""
    if isinstance(stage, str):
        for known in Stage:
            if stage.lower() == known.value.lower():
                return known
    names = ", ".join(s.value for s in Stage)
    raise InvalidInput(f"Invalid Model Version stage: {stage}. Value must be one of {names}.")


def check_tag(key: object, value: object) -> tuple[str, str]:
    key = v.check_key(key, "tag")
    return key, v.check_value(value, "tag", key, MAX_TAG_VALUE_LENGTH)


def check_text(value: object, parameter: str, limit: int = MAX_DESCRIPTION_LENGTH) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"Invalid value {value!r} for parameter '{parameter}': must be a string")
    if len(value) > limit:
        raise InvalidInput(f"'{parameter}' is {len(value)} characters long, at most {limit} are allowed")
    return value
