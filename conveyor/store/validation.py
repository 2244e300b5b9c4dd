"""Input rules shared by every back end, matching MLflow's limits so its clients see the same answers.

Each check raises :class:`~conveyor.errors.InvalidInput` naming the field and the bad value.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence

from conveyor.errors import InvalidInput
from conveyor.store.entities import Metric, Param, Tag

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_VALUE_LENGTH = 5000
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
#: Conveyor's own clients may send this many metric points in one call.
MAX_BULK_METRICS = 100_000
MAX_DATASET_NAME_LENGTH = 500
MAX_DATASET_DIGEST_LENGTH = 64
MAX_DATASET_SOURCE_LENGTH = 65535
MAX_DATASET_SCHEMA_LENGTH = 1_048_576
MAX_DATASET_PROFILE_LENGTH = 16_777_216
MAX_INPUT_TAG_KEY_LENGTH = 255
MAX_INPUT_TAG_VALUE_LENGTH = 500
MAX_SEARCH_RESULTS = 50_000
MAX_HISTORY_RESULTS = 25_000
INT64_MAX = 2**63 - 1

_KEY_PATTERN = re.compile(r"^[/\w.\- ]*$")
_RUN_ID_PATTERN = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
_EXPERIMENT_ID_PATTERN = re.compile(r"^[0-9]{1,18}$")


def check_key(key: object, kind: str) -> str:
    """Keys become file-system-like paths in UIs and exports, so they must be safe path names."""
    if not isinstance(key, str):
        raise InvalidInput(f"Invalid {kind} key {key!r}: must be a string")
    if not key:
        raise InvalidInput(f"Invalid {kind} key '': must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(
            f"Invalid {kind} key '{key[:40]}...': {len(key)} characters, at most {MAX_KEY_LENGTH}"
        )
    if not _KEY_PATTERN.match(key):
        raise InvalidInput(
            f"Invalid {kind} key {key!r}: names may only contain alphanumerics, underscores (_), "
            "dashes (-), periods (.), spaces ( ), and slashes (/)"
        )
    if key.startswith("/") or posixpath.normpath(key) != key or ".." in key.split("/"):
        raise InvalidInput(f"Invalid {kind} key {key!r}: must be a normalized relative path")
    return key


def check_value(value: object, kind: str, key: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"Invalid value {value!r} for {kind} {key!r}: must be a string")
    if len(value) > limit:
        raise InvalidInput(
            f"{kind.capitalize()} value for {key!r} is {len(value)} characters long, "
            f"at most {limit} are allowed"
        )
    return value


def check_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not _RUN_ID_PATTERN.match(run_id):
        raise InvalidInput(f"Invalid value {run_id!r} for parameter 'run_id' supplied")
    return run_id


def check_experiment_id(experiment_id: object) -> str:
    text = str(experiment_id) if isinstance(experiment_id, int) else experiment_id
    if not isinstance(text, str) or not _EXPERIMENT_ID_PATTERN.match(text):
        raise InvalidInput(f"Invalid value {experiment_id!r} for parameter 'experiment_id' supplied")
    return text


def check_experiment_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("Invalid experiment name: must be a non-empty string")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise InvalidInput(
            f"Experiment name is {len(name)} characters long, at most "
            f"{MAX_EXPERIMENT_NAME_LENGTH} are allowed"
        )
    return name


def check_timestamp(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_MAX:
        raise InvalidInput(f"Invalid value {value!r} for parameter '{field}': must be an int64 >= 0")
    return value


def check_metric(metric: Metric) -> Metric:
    check_key(metric.key, "metric")
    return check_metric_fields(metric)


def check_metrics(metrics: Sequence[Metric]) -> list[Metric]:
    """Check many points, each distinct key once: batches repeat a few keys thousands of times."""
    for key in {m.key for m in metrics}:
        check_key(key, "metric")
    return [check_metric_fields(m) for m in metrics]


def check_metric_fields(metric: Metric) -> Metric:
    """Value, timestamp and step of a point (not its key); ints become floats."""
    value, step, stamp = metric.value, metric.step, metric.timestamp
    exact_types = type(value) is float and type(step) is int and type(stamp) is int
    if exact_types and -INT64_MAX <= step <= INT64_MAX and 0 <= stamp <= INT64_MAX:
        return metric
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"Invalid value {value!r} for metric {metric.key!r}: must be a number")
    check_timestamp(stamp, "timestamp")
    if isinstance(step, bool) or not isinstance(step, int) or abs(step) > INT64_MAX:
        raise InvalidInput(f"Invalid value {step!r} for parameter 'step': must be an int64")
    return Metric(metric.key, float(value), stamp, step)


def check_param(param: Param) -> Param:
    check_key(param.key, "param")
    check_value(param.value, "param", param.key, MAX_PARAM_VALUE_LENGTH)
    return param


def check_tag(tag: Tag) -> Tag:
    check_key(tag.key, "tag")
    check_value(tag.value, "tag", tag.key, MAX_TAG_VALUE_LENGTH)
    return tag


def check_batch(metrics: Sequence[Metric], params: Sequence[Param], tags: Sequence[Tag]) -> None:
    """Batch limits are MLflow's, so one batch accepted here is accepted by MLflow and back."""
    for items, limit, kind in (
        (metrics, MAX_METRICS_PER_BATCH, "metrics"),
        (params, MAX_PARAMS_PER_BATCH, "params"),
        (tags, MAX_TAGS_PER_BATCH, "tags"),
    ):
        if len(items) > limit:
            raise InvalidInput(
                f"A batch logging request can contain at most {limit} {kind}. "
                f"Got {len(items)} {kind}. Please split up {kind} across multiple requests and try again."
            )
    total = len(metrics) + len(params) + len(tags)
    if total > MAX_ENTITIES_PER_BATCH:
        raise InvalidInput(
            f"A batch logging request can contain at most {MAX_ENTITIES_PER_BATCH} total "
            f"metrics, params and tags. Got {total}."
        )
    seen: dict[str, str] = {}
    for param in params:
        if param.key in seen and seen[param.key] != param.value:
            raise InvalidInput(f"Duplicate parameter key {param.key!r} with different values in one batch")
        seen[param.key] = param.value


def check_max_results(max_results: object, limit: int) -> int:
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= limit:
        raise InvalidInput(
            f"Invalid value {max_results!r} for parameter 'max_results' supplied. "
            f"It must be at most {limit}, and at least 1."
        )
    return max_results
