"""Cache keys: what decides a step's output, hashed part by part so a miss can be explained.

A key covers the step's code (its fingerprint, which includes the project code it calls),
the values of its plain arguments, the content hashes of its artifact inputs, the item of
a mapped step, and the versions of every registered serializer (a format change must not
serve old bytes). The parts are kept beside the key so that :func:`explain` can say which
one changed between two executions (``conveyor pipeline why-rerun``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from conveyor.pipelines import serializers
from conveyor.pipelines._encoding import literal
from conveyor.pipelines.fingerprint import CodeFingerprint, diff

#: Bumped when the key layout changes, so old entries are never matched by accident.
KEY_FORMAT = 1


@dataclass(frozen=True)
class CacheKey:
    key: str
    #: ``code`` {digest, parts}, ``params`` {arg: digest}, ``inputs`` {arg: sha256 | [sha256]},
    #: ``item`` digest or None, ``serializers`` {name: version}.
    parts: Mapping[str, Any]


def value_digest(value: Any) -> str | None:
    """A stable hash of a plain argument, or ``None`` when it has no stable encoding.

    Literals (numbers, text, containers of them, enums, dataclasses of them) hash by their
    canonical text; arrays and tables by the bytes of their deterministic serializer. A
    value with neither (an open file, a model object) makes its step uncacheable rather
    than cached under a key that might not change when the value does.
    """
    text = literal(value)
    if text is not None:
        return hashlib.sha256(b"literal\0" + text.encode("utf-8", "surrogatepass")).hexdigest()
    try:
        serializer = serializers.for_value(value)
    except ValueError:
        return None
    if not serializer.deterministic:
        return None
    digest = hashlib.sha256(f"{serializer.name}/{serializer.version}\0".encode())
    for chunk in serializer.dump(value):
        digest.update(chunk)
    return digest.hexdigest()


def serializer_versions() -> dict[str, int]:
    return {name: s.version for name, s in sorted(serializers.registry.items())}


def make_key(
    code: CodeFingerprint,
    params: Mapping[str, str],
    inputs: Mapping[str, Any],
    versions: Mapping[str, int],
    item: str | None = None,
) -> CacheKey:
    """The key for one call; ``params`` and ``item`` hold digests from :func:`value_digest`."""
    parts = {
        "code": {"digest": code.digest, "parts": dict(code.parts)},
        "params": dict(sorted(params.items())),
        "inputs": dict(sorted(inputs.items())),
        "item": item,
        "serializers": dict(versions),
    }
    summary = {**parts, "code": code.digest, "format": KEY_FORMAT}
    key = hashlib.sha256(orjson.dumps(summary, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return CacheKey(key, parts)


def explain(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two keys' parts, one line per difference, code first."""
    lines: list[str] = []
    if old.get("code", {}).get("digest") != new.get("code", {}).get("digest"):
        changes = diff(old.get("code", {}).get("parts", {}), new.get("code", {}).get("parts", {}))
        detail = changes.explain().replace("\n", "; ") if not changes.unchanged else "the step's identity"
        lines.append(f"code changed: {detail}")
    lines += _changed("parameter", old.get("params", {}), new.get("params", {}))
    lines += _changed("input", old.get("inputs", {}), new.get("inputs", {}))
    old_items, new_items = old.get("items"), new.get("items")
    if old_items is not None or new_items is not None:
        lines += _changed_items(old_items or [], new_items or [])
    elif old.get("item") != new.get("item"):
        lines.append("the mapped item changed")
    if old.get("serializers") != new.get("serializers"):
        lines += _changed("serializer version", old.get("serializers", {}), new.get("serializers", {}))
    return lines


def _changed(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    lines = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            lines.append(f"{kind} {name!r} added")
        elif name not in new:
            lines.append(f"{kind} {name!r} removed")
        elif old[name] != new[name]:
            lines.append(f"{kind} {name!r} changed ({_short(old[name])} → {_short(new[name])})")
    return lines


def _changed_items(old: list[str], new: list[str]) -> list[str]:
    if old == new:
        return []
    kept = set(old)
    fresh = sum(1 for key in new if key not in kept)
    return [f"mapped items changed: {fresh} of {len(new)} item(s) have a key the previous run did not have"]


def _short(value: Any) -> str:
    if isinstance(value, str):
        return value[:12]
    if isinstance(value, list):
        return f"[{', '.join(str(v)[:12] for v in value[:3])}{', …' if len(value) > 3 else ''}]"
    return repr(value)
