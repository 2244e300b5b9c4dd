"""The type rules of a pipeline graph, applied while it is built, before anything runs.

:func:`is_compatible` decides whether a step's declared output may feed another step's
parameter; :func:`value_matches` whether a plain value (a literal argument, a pipeline
parameter) fits an annotation; :func:`parse_text` turns command-line text into a typed
parameter value. The rules favour catching wiring mistakes (a model passed where a table
is expected) over proving programs correct, so anything they cannot judge is accepted:

* ``Any``, a missing annotation, or one that cannot be resolved (a name imported only
  under ``TYPE_CHECKING``) accepts and fits anything.
* Classes: the output's class must be the parameter's class or a subclass of it
  (``issubclass``, so ABCs such as ``collections.abc.Sequence`` work). Numbers follow the
  numeric tower: ``int`` fits ``float`` and ``complex``; any ``numbers.Integral`` (a NumPy
  integer) fits ``int`` and any ``numbers.Real`` fits ``float``.
* Unions and ``Optional``: an output typed ``A | B`` fits only if *every* member fits (a
  step that may return ``None`` cannot feed a parameter that does not take ``None``); a
  parameter typed ``A | B`` takes an output that fits *any* member.
* Generics are compared by origin first (``list[int]`` fits ``Sequence[int]`` and
  ``list``). Their arguments are compared only when both sides have them: element types
  for collections (``dict[str, int]`` feeding ``Iterable[str]`` compares the keys), pair
  by pair for equal arities, element by element for fixed-length tuples. Arguments are
  treated as covariant (``list[bool]`` fits ``list[int]``), ``Callable`` arguments are not
  compared, and a mismatch needs both arguments concrete and incompatible:
  ``list[int]`` → ``list[str]`` fails, ``list`` → ``list[str]`` and ``list[Any]`` pass.
* ``Literal``: an output typed ``Literal[...]`` fits if each of its values fits; a plain
  output feeding a ``Literal`` parameter passes when the value's type could match.
* ``NewType`` counts as its supertype, a ``TypeVar`` as its bound (else ``Any``),
  ``Annotated[T, ...]`` as ``T``; a ``Protocol`` that ``issubclass`` cannot check, and any
  other form these rules do not know, accepts everything.

Values are checked one level deep: ``isinstance`` against the origin (a ``list[int]``
parameter takes any list), ``Literal`` by membership.
"""

from __future__ import annotations

import collections.abc
import enum
import json
import numbers
import types
import typing
from pathlib import PurePath
from typing import Any, Literal, Union, get_args, get_origin

_NONE = type(None)
_NUMERIC: dict[type, type] = {int: numbers.Integral, float: numbers.Real, complex: numbers.Complex}
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})
_NULL = frozenset({"none", "null"})

#: Types that :func:`parse_text` reads from the command line, for error messages.
PARSEABLE = (
    "str, int, float, bool, Path, Enum, Literal[...], Optional/unions of those, list/tuple/dict (JSON)"
)


class UnsupportedType(ValueError):
    """:func:`parse_text` has no rule for this annotation."""


def normalize(tp: Any) -> Any:
    """``tp`` with the wrappers that do not change what it accepts removed (see module doc)."""
    for _ in range(32):  # NewType of NewType of ...; bounded in case of a pathological chain
        if tp is None:
            return _NONE
        if isinstance(tp, str | typing.ForwardRef):
            return Any
        if isinstance(tp, typing.TypeVar):
            if tp.__bound__ is not None:
                tp = tp.__bound__
            elif tp.__constraints__:
                return Union[tp.__constraints__]  # noqa: UP007 - built from a tuple at run time
            else:
                return Any
        elif isinstance(tp, typing.NewType):
            tp = tp.__supertype__
        elif get_origin(tp) is typing.Annotated:
            tp = get_args(tp)[0]
        else:
            return tp
    return Any


def is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def is_compatible(produced: Any, expected: Any) -> bool:
    """Whether a value declared as ``produced`` may be passed where ``expected`` is declared.

    Both are annotations as ``typing.get_type_hints`` returns them. See the module
    docstring for the rules.
    """
    if produced is expected:  # the common case, kept cheap: ~1 ms per step is the budget
        return True
    produced, expected = normalize(produced), normalize(expected)
    if expected is Any or produced is Any:
        return True
    if is_union(produced):
        return all(is_compatible(member, expected) for member in get_args(produced))
    if is_union(expected):
        return any(is_compatible(produced, member) for member in get_args(expected))
    if get_origin(produced) is Literal:
        return all(value_matches(value, expected) for value in get_args(produced))
    if get_origin(expected) is Literal:
        kinds = {type(value) for value in get_args(expected)}
        return any(is_compatible(produced, kind) or is_compatible(kind, produced) for kind in kinds)
    p_origin, e_origin = _origin(produced), _origin(expected)
    if p_origin is None or e_origin is None:
        return True
    if not _subclass(p_origin, e_origin):
        return False
    return _arguments_compatible(get_args(produced), get_args(expected), p_origin, e_origin)


def value_matches(value: object, hint: Any) -> bool:
    """Whether ``value`` fits the annotation ``hint``, checked one level deep."""
    hint = normalize(hint)
    if hint is Any:
        return True
    if is_union(hint):
        return any(value_matches(value, member) for member in get_args(hint))
    origin = get_origin(hint)
    if origin is Literal:
        return any(value == option and type(value) is type(option) for option in get_args(hint))
    cls = _origin(hint)
    if cls is None:
        return True
    if cls in _NUMERIC:
        return isinstance(value, _NUMERIC[cls])
    try:
        matches = isinstance(value, cls)
    except TypeError:  # a Protocol that is not runtime-checkable, and the like
        return True
    if matches and origin is type and get_args(hint) and isinstance(value, type):
        target = _origin(normalize(get_args(hint)[0]))
        return target is None or _subclass(value, target)
    return matches


def element_type(tp: Any) -> Any | None:
    """The type of the items of a value typed ``tp``; ``None`` when it is not iterable.

    Used for ``step.map(output)``: ``list[int]`` gives ``int``, ``tuple[A, B]`` gives
    ``A | B``, ``dict[K, V]`` gives ``K`` (iterating a dict yields keys); anything the
    rules cannot judge gives ``Any``.
    """
    tp = normalize(tp)
    if tp is Any or is_union(tp) or get_origin(tp) is Literal:
        return Any
    origin = _origin(tp)
    if origin is None:
        return Any
    if not _subclass(origin, collections.abc.Iterable):
        return None
    args = get_args(tp)
    if origin is str:
        return str
    if origin is bytes:
        return int
    if not args:
        return Any
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
        return Union[args]  # noqa: UP007 - built from a tuple at run time
    return args[0]


def fixed_tuple(tp: Any) -> tuple[Any, ...] | None:
    """The element types of a fixed-length tuple annotation (``tuple[A, B]``), else ``None``."""
    tp = normalize(tp)
    if get_origin(tp) is not tuple:
        return None
    args = get_args(tp)
    if not args or (len(args) == 2 and args[1] is Ellipsis) or args == ((),):
        return None
    return args


def describe(tp: Any) -> str:
    """A short readable name for an annotation, for error messages."""
    if tp is Any:
        return "Any"
    if tp is None or tp is _NONE:
        return "None"
    if isinstance(tp, type) and get_origin(tp) is None:
        if tp.__module__ == "builtins":
            return tp.__qualname__
        return f"{tp.__module__}.{tp.__qualname__}"
    return repr(tp).replace("typing.", "")


def parse_text(text: str, hint: Any) -> Any:
    """The value of type ``hint`` written as ``text`` on the command line.

    Raises:
        UnsupportedType: no rule reads this type from text (see :data:`PARSEABLE`).
        ValueError: ``text`` is not a valid value of the type.
    """
    hint = normalize(hint)
    if hint is Any:
        return text
    if is_union(hint):
        members = get_args(hint)
        if _NONE in members and text.strip().lower() in _NULL:
            return None
        readable = False
        for member in members:
            if member is _NONE:
                continue
            try:
                return parse_text(text, member)
            except UnsupportedType:
                continue
            except ValueError:
                readable = True
        raise ValueError(text) if readable else UnsupportedType(describe(hint))
    if get_origin(hint) is Literal:
        for option in get_args(hint):
            try:
                if parse_text(text, type(option)) == option:
                    return option
            except ValueError:
                continue
        raise ValueError(text)
    if hint is _NONE:
        if text.strip().lower() in _NULL:
            return None
        raise ValueError(text)
    cls = _origin(hint)
    if cls is None:
        raise UnsupportedType(describe(hint))
    return _parse_class(text, hint, cls)


def _parse_class(text: str, hint: Any, cls: type) -> Any:
    if cls is str:
        return text
    if cls is bool:
        word = text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueError(text)
    if cls is int or cls is float:
        return cls(text.strip())
    if issubclass(cls, enum.Enum):
        if text in cls.__members__:
            return cls.__members__[text]
        for member in cls:
            if str(member.value) == text:
                return member
        raise ValueError(text)
    if issubclass(cls, PurePath):
        return cls(text)
    if cls in (list, tuple, set, frozenset, dict) or (
        cls in (collections.abc.Sequence, collections.abc.Mapping, collections.abc.Set)
    ):
        return _parse_json(text, hint, cls)
    raise UnsupportedType(describe(hint))


def _parse_json(text: str, hint: Any, cls: type) -> Any:
    value = json.loads(text)  # JSONDecodeError is a ValueError
    if cls in (tuple, set, frozenset) and isinstance(value, list):
        value = cls(value)
    if cls is collections.abc.Set and isinstance(value, list):
        value = frozenset(value)
    if not value_matches(value, hint):
        raise ValueError(text)
    args = get_args(hint)
    if args and not isinstance(value, dict):
        item = element_type(hint)
        if not all(value_matches(v, item) for v in value):
            raise ValueError(text)
    elif (
        len(args) == 2
        and isinstance(value, dict)
        and not all(value_matches(k, args[0]) and value_matches(v, args[1]) for k, v in value.items())
    ):
        raise ValueError(text)
    return value


def _origin(tp: Any) -> type | None:
    """The class behind an annotation (``list`` for ``list[int]``), or ``None`` if it has none."""
    origin = get_origin(tp)
    if origin is not None:
        return origin if isinstance(origin, type) else None
    return tp if isinstance(tp, type) else None


def _subclass(produced: type, expected: type) -> bool:
    try:
        if expected in _NUMERIC and issubclass(produced, _NUMERIC[expected]):
            return True
        return issubclass(produced, expected)
    except TypeError:  # a Protocol with data members, or one that is not runtime-checkable
        return True


def _arguments_compatible(
    p_args: tuple[Any, ...], e_args: tuple[Any, ...], p_origin: type, e_origin: type
) -> bool:
    if not p_args or not e_args or e_origin is collections.abc.Callable:
        return True
    if p_origin is tuple:
        p_variadic = len(p_args) == 2 and p_args[1] is Ellipsis
        items = p_args[:1] if p_variadic else p_args
        if e_origin is tuple:
            e_variadic = len(e_args) == 2 and e_args[1] is Ellipsis
            if e_variadic:
                return all(is_compatible(item, e_args[0]) for item in items)
            if p_variadic:
                return all(is_compatible(items[0], e) for e in e_args)
            return len(p_args) == len(e_args) and all(map(is_compatible, p_args, e_args))
        if len(e_args) == 1:
            return all(is_compatible(item, e_args[0]) for item in items)
        return True
    if (
        len(e_args) == 1
        and len(p_args) != 1
        and _subclass(e_origin, collections.abc.Iterable)
        and _subclass(p_origin, collections.abc.Iterable)
    ):
        return is_compatible(p_args[0], e_args[0])  # dict[K, V] → Iterable[K]
    if len(p_args) == len(e_args):
        return all(map(is_compatible, p_args, e_args))
    return True
