"""How code and literal values are encoded for hashing: bytecode with constants inlined,
literals in a canonical text form. Private to :mod:`conveyor.pipelines.fingerprint`."""

from __future__ import annotations

import dataclasses
import dis
import enum
import hashlib
import sys
import types
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

# --- literals -----------------------------------------------------------------------------

#: Containers larger than this are not hashed by value (recorded by type instead), so a
#: module-level lookup table of a million entries cannot make every fingerprint slow.
_MAX_LITERAL_ITEMS = 10_000


class _NotLiteral(Exception):
    """Raised inside the encoder when a value is not a plain literal."""


def literal(value: object) -> str | None:
    """Canonical text of a plain literal, or ``None`` when ``value`` is not one.

    Exact types only (a ``str`` subclass may override ``__eq__``), and sets and dict keys
    sorted by their encoding, because their iteration order follows ``PYTHONHASHSEED``.
    """
    budget = [_MAX_LITERAL_ITEMS]
    try:
        return _encode_literal(value, budget)
    except (_NotLiteral, RecursionError, AttributeError):
        return None


def _encode_literal(value: object, budget: list[int]) -> str:
    budget[0] -= 1
    if budget[0] < 0:
        raise _NotLiteral
    kind = type(value)
    if value is None or value is Ellipsis or kind is bool:
        return repr(value)
    if kind is int:
        return f"i{value:x}"  # hex: decimal str() refuses ints over 4,300 digits
    if kind is float or kind is complex:
        return f"{kind.__name__[0]}{value!r}"
    if kind is str:
        return f"s{value!r}"
    if kind is bytes:
        return f"b{value.hex()}"  # type: ignore[attr-defined]
    if kind is tuple or kind is list:
        inner = ",".join(_encode_literal(item, budget) for item in value)  # type: ignore[attr-defined]
        return f"{'t' if kind is tuple else 'l'}({inner})"
    if kind is frozenset or kind is set:
        inner = ",".join(sorted(_encode_literal(item, budget) for item in value))  # type: ignore[attr-defined]
        return f"{'f' if kind is frozenset else 'S'}({inner})"
    if kind is dict:
        pairs = sorted(
            f"{_encode_literal(k, budget)}:{_encode_literal(v, budget)}"
            for k, v in value.items()  # type: ignore[attr-defined]
        )
        return f"d({','.join(pairs)})"
    if isinstance(value, enum.Enum):
        return f"e{type_name(kind)}.{value.name}={_encode_literal(value.value, budget)}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        inner = ",".join(
            f"{f.name}={_encode_literal(getattr(value, f.name), budget)}" for f in dataclasses.fields(value)
        )
        return f"D{type_name(kind)}({inner})"
    raise _NotLiteral


def type_name(kind: type) -> str:
    return f"{getattr(kind, '__module__', '?')}:{getattr(kind, '__qualname__', kind.__name__)}"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# --- bytecode -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _CodeInfo:
    """What one code object (nested code included) contributes, independent of globals."""

    digest: str
    #: Names read or written as globals (``LOAD_GLOBAL``, ``LOAD_NAME``, ...), sorted.
    globals: tuple[str, ...]
    #: Names used as attributes (``x.name``) or imported from a module, sorted.
    attrs: tuple[str, ...]
    #: ``(name, level, fromlist)`` of each ``import`` statement, in bytecode order.
    imports: tuple[tuple[str, int, tuple[str, ...]], ...]


def _op(name: str) -> int | None:
    return dis.opmap.get(name)


_EXTENDED_ARG = dis.opmap["EXTENDED_ARG"]
_CACHE = dis.opmap.get("CACHE", 0)
_CONST_OPS = frozenset(dis.hasconst)
_LOAD_SMALL_INT = _op("LOAD_SMALL_INT")
_IMPORT_NAME = dis.opmap["IMPORT_NAME"]
_GLOBAL_OPS = frozenset(
    op
    for op in map(
        _op, ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_FROM_DICT_OR_GLOBALS")
    )
    if op is not None
)
_ATTR_OPS = frozenset(
    op
    for op in map(
        _op, ("LOAD_ATTR", "LOAD_METHOD", "STORE_ATTR", "DELETE_ATTR", "LOAD_SUPER_ATTR", "IMPORT_FROM")
    )
    if op is not None
)
_NAME_OPS = frozenset(dis.hasname)
#: How many low bits of the argument carry flags rather than the name index.
_NAME_SHIFT = {dis.opmap["LOAD_GLOBAL"]: 1}
if sys.version_info >= (3, 12):
    _NAME_SHIFT[dis.opmap["LOAD_ATTR"]] = 1
    _NAME_SHIFT[dis.opmap["LOAD_SUPER_ATTR"]] = 2
#: Set on code objects that carry a docstring (3.14+); meaningless for the key.
_CO_HAS_DOCSTRING = 0x4000000

#: Per-process memo: code objects are immutable, so their analysis never goes stale.
_CODE_CACHE: weakref.WeakKeyDictionary[types.CodeType, _CodeInfo] = weakref.WeakKeyDictionary()


def analyse(code: types.CodeType) -> _CodeInfo:
    info = _CODE_CACHE.get(code)
    if info is None:
        info = _CODE_CACHE[code] = _analyse_uncached(code)
    return info


def _instructions(code: types.CodeType) -> Iterable[tuple[int, int]]:
    """``(opcode, argument)`` pairs, ``EXTENDED_ARG`` folded in and inline caches skipped."""
    raw = code.co_code
    extended = 0
    for i in range(0, len(raw), 2):
        op = raw[i]
        arg = raw[i + 1] | extended
        if op == _EXTENDED_ARG:
            extended = arg << 8
            continue
        extended = 0
        if op != _CACHE:
            yield op, arg


def _analyse_uncached(code: types.CodeType) -> _CodeInfo:
    """Hash the instruction stream with each constant replaced by its canonical encoding.

    Hashing instructions rather than the source ignores comments and formatting; putting
    the constant *value* where the bytecode has a constant *index* means an unused
    docstring (a constant no instruction loads) drops out, and so does any renumbering of
    the constant table. Line-number tables and the file name are left out on purpose.
    """
    consts = code.co_consts
    names = code.co_names
    found_globals: set[str] = set()
    found_attrs: set[str] = set()
    imports: list[tuple[str, int, tuple[str, ...]]] = []
    stream: list[str] = [
        code.co_name,
        f"{code.co_argcount},{code.co_posonlyargcount},{code.co_kwonlyargcount}",
        str(code.co_flags & ~_CO_HAS_DOCSTRING),
        " ".join(code.co_varnames),
        " ".join(code.co_cellvars),
        " ".join(code.co_freevars),
        " ".join(names),
        getattr(code, "co_exceptiontable", b"").hex(),
    ]
    previous: list[object] = [None, None]  # values pushed by the last two instructions
    for op, arg in _instructions(code):
        pushed: object = None
        if op in _CONST_OPS:
            pushed = consts[arg]
            stream.append(f"{op}={_const(pushed, found_globals, found_attrs, imports)}")
        else:
            stream.append(f"{op}:{arg}")
            if op == _LOAD_SMALL_INT:
                pushed = arg
            elif op in _NAME_OPS:
                name = names[arg >> _NAME_SHIFT.get(op, 0)]
                if op in _GLOBAL_OPS:
                    found_globals.add(name)
                elif op in _ATTR_OPS:
                    found_attrs.add(name)
                elif op == _IMPORT_NAME:
                    level, fromlist = previous
                    imports.append(
                        (
                            name,
                            level if type(level) is int else 0,
                            tuple(fromlist) if isinstance(fromlist, tuple) else (),
                        )
                    )
        previous = [previous[1], pushed]
    found_attrs.update(name for _, _, fromlist in imports for name in fromlist)
    return _CodeInfo(
        digest=sha("\0".join(stream)),
        globals=tuple(sorted(found_globals)),
        attrs=tuple(sorted(found_attrs)),
        imports=tuple(imports),
    )


def _const(
    value: object,
    found_globals: set[str],
    found_attrs: set[str],
    imports: list[tuple[str, int, tuple[str, ...]]],
) -> str:
    """Encode a constant; a nested code object (lambda, inner def, comprehension) is
    hashed recursively and its references are merged into the enclosing function's."""
    if isinstance(value, types.CodeType):
        nested = analyse(value)
        found_globals.update(nested.globals)
        found_attrs.update(nested.attrs)
        imports.extend(nested.imports)
        return f"code:{nested.digest}"
    encoded = literal(value)
    return encoded if encoded is not None else f"?{type(value).__name__}"
