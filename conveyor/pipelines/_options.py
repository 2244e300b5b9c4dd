"""Step options: what ``@step(...)`` records, validated and normalised when it decorates.

Durations become float seconds, memory becomes int bytes, so executors read one unit.
Every error names the step and the option, because decoration happens at import time
and the traceback alone points at a decorator line far from the mistake.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from conveyor.pipelines._errors import PipelineDefinitionError

#: Step names are identifiers, so that node ids (``train``, ``train-2``) never collide.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_MEMORY = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]i?b?|b)?\s*", re.IGNORECASE)
_BYTES = {
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}

#: Resource names a step may ask for; see :class:`Resources`.
RESOURCE_NAMES = ("cpu", "memory", "gpu")


@dataclass(frozen=True)
class Resources:
    """What one task of a step needs; ``None`` means "no requirement".

    Executors translate these (the Dask executor into worker resources); the local
    executor ignores them.
    """

    #: CPU cores, fractions allowed (``0.5``); greater than 0.
    cpu: float | None = None
    #: Bytes of memory; given as an int or as ``"4GiB"``, ``"512MiB"``, ``"2GB"``.
    memory: int | None = None
    #: Whole GPUs; 0 or more.
    gpu: int | None = None


@dataclass(frozen=True)
class StepOptions:
    """The options of one step, as ``@step(...)`` recorded them.

    Frozen and comparable, so two builds of a pipeline give equal specs. The engine reads
    them; the definition layer only checks that they make sense.
    """

    #: The step's name: the function name unless ``name=`` was given; an identifier.
    name: str
    #: Extra attempts after a failure (0: run once).
    retries: int = 0
    #: Exception types that are retried; others fail the step at once.
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    #: Seconds to wait before the first retry; the engine doubles it for each later one.
    backoff: float = 1.0
    #: Seconds one attempt may take before the engine stops it; ``None``: no limit.
    timeout: float | None = None
    #: What one task needs from the machine that runs it.
    resources: Resources = Resources()
    #: Reuse a cached output when the cache key matches (on by default).
    cache: bool = True
    #: The step gets a Spark session from the configured master.
    spark: bool = False
    #: Outputs with no typed serializer may be pickled (with a warning).
    allow_pickle: bool = False


def make_options(
    name: str,
    *,
    retries: object = 0,
    retry_on: object = (Exception,),
    backoff: object = 1.0,
    timeout: object = None,
    resources: object = None,
    cache: object = True,
    spark: object = False,
    allow_pickle: object = False,
) -> StepOptions:
    """Validate raw decorator arguments and return the normalised options.

    Raises:
        PipelineDefinitionError: an option has a bad value; the message names the step
            (``name``) and the option.
    """
    check_name(name, f"step name {name!r}", "@step(name='train_model')")
    where = f"step {name!r}"
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise PipelineDefinitionError(f"{where}: retries must be an int >= 0, got {retries!r}")
    exc_types = _exception_types(where, retry_on)
    if exc_types != (Exception,) and retries == 0:
        raise PipelineDefinitionError(
            f"{where}: retry_on has no effect with retries=0; set retries=N as well"
        )
    for flag, value in (("cache", cache), ("spark", spark), ("allow_pickle", allow_pickle)):
        if not isinstance(value, bool):
            raise PipelineDefinitionError(f"{where}: {flag} must be True or False, got {value!r}")
    return StepOptions(
        name=name,
        retries=retries,
        retry_on=exc_types,
        backoff=_duration(where, "backoff", backoff, allow_zero=True),
        timeout=None if timeout is None else _duration(where, "timeout", timeout, allow_zero=False),
        resources=_resources(where, resources),
        cache=bool(cache),
        spark=bool(spark),
        allow_pickle=bool(allow_pickle),
    )


def check_name(name: object, what: str, example: str) -> None:
    """Raise unless ``name`` is an identifier; ``what`` and ``example`` go in the message."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise PipelineDefinitionError(
            f"invalid {what}: use a Python identifier (letters, digits, '_'), e.g. {example}"
        )


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a number, a ``timedelta``, or text like ``"10m"``, ``"1h30m"``.

    Units: ``ms``, ``s``, ``m``, ``h``, ``d``; a bare number (``"90"``) is seconds.

    Raises:
        ValueError: not a duration, negative, or not finite.
    """
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError("a bool is not a duration")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = _parse_duration_text(text)
    else:
        raise ValueError(f"a {type(value).__name__} is not a duration")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be finite and >= 0")
    return seconds


def _parse_duration_text(text: str) -> float:
    position, seconds = 0, 0.0
    compact = text.replace(" ", "")
    for match in _DURATION_PART.finditer(compact):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _SECONDS[match.group(2).lower()]
        position = match.end()
    if position == 0 or position != len(compact):
        raise ValueError(f"cannot read {text!r} as a duration")
    return seconds


def parse_memory(value: object) -> int:
    """Bytes in ``value``: an int, or text like ``"4GiB"``, ``"512MiB"``, ``"2GB"``, ``"1Gi"``.

    ``KiB/MiB/GiB/TiB`` (and ``Ki``…) are powers of 1024, ``kB/MB/GB/TB`` (and ``k``…)
    powers of 1000; a bare number is bytes. Case is ignored.

    Raises:
        ValueError: not a size, or not greater than 0.
    """
    if isinstance(value, bool):
        raise ValueError("a bool is not a memory size")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float) and value.is_integer():
        size = int(value)
    elif isinstance(value, str):
        match = _MEMORY.fullmatch(value)
        if not match:
            raise ValueError(f"cannot read {value!r} as a memory size")
        unit = (match.group(2) or "b").lower()
        size = int(float(match.group(1)) * _BYTES[unit])
    else:
        raise ValueError(f"a {type(value).__name__} is not a memory size")
    if size <= 0:
        raise ValueError("a memory size must be greater than 0")
    return size


def _duration(where: str, option: str, value: object, *, allow_zero: bool) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise PipelineDefinitionError(
            f"{where}: invalid {option} {value!r} ({exc}); give seconds or a duration "
            "such as '30s', '10m', '2h', '1h30m'"
        ) from None
    if seconds == 0 and not allow_zero:
        raise PipelineDefinitionError(f"{where}: {option} must be greater than 0 (use None for no limit)")
    return seconds


def _exception_types(where: str, value: object) -> tuple[type[BaseException], ...]:
    items: Iterable[object] = value if isinstance(value, tuple | list) else (value,)
    found = tuple(items)
    if not found or not all(isinstance(t, type) and issubclass(t, BaseException) for t in found):
        raise PipelineDefinitionError(
            f"{where}: retry_on must be an exception class or a tuple of them, got {value!r}"
        )
    return found  # type: ignore[return-value]


def _resources(where: str, value: object) -> Resources:
    if value is None:
        return Resources()
    if isinstance(value, Resources):
        return value
    if not isinstance(value, Mapping):
        raise PipelineDefinitionError(
            f"{where}: resources must be a dict such as {{'cpu': 2, 'memory': '4GiB'}}, got {value!r}"
        )
    unknown = sorted(str(k) for k in value if k not in RESOURCE_NAMES)
    if unknown:
        raise PipelineDefinitionError(
            f"{where}: unknown resource {', '.join(map(repr, unknown))}; known: {', '.join(RESOURCE_NAMES)}"
        )
    cpu, memory, gpu = value.get("cpu"), value.get("memory"), value.get("gpu")
    if cpu is not None and (
        isinstance(cpu, bool) or not isinstance(cpu, int | float) or not math.isfinite(cpu) or cpu <= 0
    ):
        raise PipelineDefinitionError(f"{where}: resources['cpu'] must be a number > 0, got {cpu!r}")
    if memory is not None:
        try:
            memory = parse_memory(memory)
        except ValueError as exc:
            raise PipelineDefinitionError(
                f"{where}: invalid resources['memory'] {memory!r} ({exc}); give bytes or a size "
                "such as '512MiB', '4GiB'"
            ) from None
    if gpu is not None and (isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0):
        raise PipelineDefinitionError(f"{where}: resources['gpu'] must be an int >= 0, got {gpu!r}")
    return Resources(cpu=None if cpu is None else float(cpu), memory=memory, gpu=gpu)
