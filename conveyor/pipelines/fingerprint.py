"""Code fingerprints: one hash for a step's code and all the project code it reaches.

A cached step output is valid only while the code that produced it is unchanged, and that
code is more than the step's own body: the helpers it calls, the classes it builds, the
module constants it reads. :func:`fingerprint` walks from the step to everything it
references and hashes each piece on its own, so that the engine can store the parts and
``why-rerun`` can name the piece that changed (:func:`diff`).

What is hashed, and why:

* **Project code** (any module whose file is not under the standard library or a
  ``site-packages``/``dist-packages`` directory) is hashed by its *bytecode* with
  constants, names and nested code resolved, never by its source text. Comments, blank
  lines, reformatting and docstrings therefore leave the key alone; a changed constant,
  operator or called name does not.
* **References** are followed through globals, module attributes (``features.scale``),
  imports inside functions, closure cells, default arguments, ``__wrapped__`` (decorators)
  and class members, transitively, with cycles cut.
* **Third-party and standard-library objects** contribute only their name and the version
  of the distribution that ships them (``from numpy import mean`` → ``numpy:mean`` →
  ``numpy 2.4.6``; ``np.mean`` → ``numpy``, since a library module's attributes are not
  walked; the standard library reports the Python version): upgrading scikit-learn
  changes the key, but its internals are not hashed. Conveyor itself counts as a library,
  even when installed from a checkout.
* **Module constants** that are plain literals (numbers, strings, bytes, ``None``, and
  tuples, lists, sets, dicts, enums and dataclass instances built from them) are hashed by
  value; containers holding code (a dict of functions) are followed element by element;
  any other global is recorded by name and type only.

Not detected (the engine's ``--no-cache`` and ``cache=False`` are the way out):

* code reached only at run time: ``getattr(obj, name)``, ``importlib.import_module(var)``,
  ``eval``/``exec``, attributes a module provides through ``__getattr__``;
* methods of objects whose class the code never names, such as an input's class (the
  input's content hash covers its data, not its class's code);
* the value of a global that is not a literal (an array, a DataFrame, a fitted model,
  a compiled regex): it counts by name and type only;
* edits inside installed distributions that keep their version (a patched file in
  ``site-packages``), and compiled extension modules of the project (name only);
* anything outside code: data files, environment variables, the clock.

Attribute names are resolved on every module a function reaches, because bytecode does
not say on which object an attribute is read. This can add parts that are not really
called (a spurious rerun when they change), never drop one.

Every token is built from names and canonical encodings, never from ``id()`` or ``hash()``,
so the digest is the same in every process whatever ``PYTHONHASHSEED`` is. The bytecode
format of the running interpreter is itself a part (``<python>``): bytecode is only
comparable within one format, so a Python upgrade shows up as that part changing.

Example::

    old = fingerprint(train)
    ...  # edit a helper that train calls
    print(diff(old.parts, fingerprint(train).parts).explain())
    # changed: mypkg.features:scale
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import re
import site
import sys
import sysconfig
import types
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from conveyor.pipelines._encoding import analyse, literal, sha, type_name

#: Bumped whenever the encoding changes, so old and new digests never collide.
FORMAT_VERSION = 1

#: The part that stands for the interpreter's bytecode format.
PYTHON_PART = "<python>"

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class CodeFingerprint:
    """The fingerprint of a callable and of the project code it reaches.

    Two fingerprints are equal when their digests are; ``parts`` is what a later
    :func:`diff` compares to say *what* changed.
    """

    #: SHA-256 (hex) over the root and every part; the value the cache key uses.
    digest: str
    #: ``module:qualname`` (or ``module:NAME`` for a constant) → that piece's token: a
    #: SHA-256 hex for project code and constants, ``"<distribution> <version>"`` for
    #: third-party and standard-library objects. Sorted by name, read-only.
    parts: Mapping[str, str] = field(compare=False, repr=False)


@dataclass(frozen=True)
class FingerprintDiff:
    """Which parts of two fingerprints differ, each list sorted by name."""

    changed: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    #: For changed third-party parts: name → (old token, new token), e.g. versions.
    versions: Mapping[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    @property
    def unchanged(self) -> bool:
        """True when no part differs."""
        return not (self.changed or self.added or self.removed)

    def explain(self) -> str:
        """One line per kind of difference, for ``why-rerun`` and logs.

        A changed third-party part shows its old and new version, because "numpy:mean
        changed" alone would send the reader looking for an edit that never happened.
        """
        if self.unchanged:
            return "code unchanged"
        lines = []
        if self.changed:
            shown = [
                f"{name} ({self.versions[name][0]} → {self.versions[name][1]})"
                if name in self.versions
                else name
                for name in self.changed
            ]
            lines.append("changed: " + ", ".join(shown))
        if self.added:
            lines.append("added: " + ", ".join(self.added))
        if self.removed:
            lines.append("removed: " + ", ".join(self.removed))
        return "\n".join(lines)


def fingerprint(fn: Callable[..., object]) -> CodeFingerprint:
    """Fingerprint ``fn`` and, transitively, the project code it references.

    Call it once per step when the cache key is built: the result changes exactly when
    the code that would run changes (within the limits in the module docstring), so a
    cached output can be reused when the digest matches.

    Args:
        fn: A function, lambda, bound method, class, ``functools.partial`` or callable
            object. Decorated functions are followed through ``__wrapped__`` and their
            closures.

    Returns:
        The digest and the per-part tokens.

    Raises:
        TypeError: ``fn`` is not callable.
    """
    if not callable(fn):
        raise TypeError(f"fingerprint() needs a callable (the step function), got {type(fn).__name__}")
    walker = _Walker()
    root = walker.ref(fn)
    walker.drain()
    walker.parts[PYTHON_PART] = f"{sys.implementation.cache_tag} {importlib.util.MAGIC_NUMBER.hex()}"
    parts = dict(sorted(walker.parts.items()))
    digest = hashlib.sha256()
    digest.update(f"conveyor-code-fingerprint/{FORMAT_VERSION}\0{root}\0".encode())
    for name, token in parts.items():
        digest.update(f"{name}\0{token}\0".encode())
    return CodeFingerprint(digest=digest.hexdigest(), parts=types.MappingProxyType(parts))


def diff(old_parts: Mapping[str, str], new_parts: Mapping[str, str]) -> FingerprintDiff:
    """Compare the parts of two fingerprints: what changed, what appeared, what went.

    Use it to explain a cache miss. When the digests differ but the parts do not, the
    root itself changed identity (another function was fingerprinted) or the format did.

    Args:
        old_parts: ``CodeFingerprint.parts`` of the earlier run (any mapping, e.g. JSON).
        new_parts: ``CodeFingerprint.parts`` now.

    Returns:
        The sorted differences.
    """
    changed = tuple(
        sorted(name for name in old_parts.keys() & new_parts.keys() if old_parts[name] != new_parts[name])
    )
    versions = {
        name: (old_parts[name], new_parts[name])
        for name in changed
        if not _HEX_DIGEST.fullmatch(old_parts[name]) and not _HEX_DIGEST.fullmatch(new_parts[name])
    }
    return FingerprintDiff(
        changed=changed,
        added=tuple(sorted(new_parts.keys() - old_parts.keys())),
        removed=tuple(sorted(old_parts.keys() - new_parts.keys())),
        versions=versions,
    )


# --- project or library -------------------------------------------------------------------


@functools.cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.update(site.getsitepackages() if hasattr(site, "getsitepackages") else ())
    roots.add(site.getusersitepackages())
    return tuple(sorted(os.path.join(os.path.realpath(root), "") for root in roots))


@functools.lru_cache(maxsize=4096)
def _is_library_path(filename: str) -> bool:
    """True for files of the standard library or of an installed distribution."""
    if filename.startswith("<frozen "):
        return True
    real = os.path.realpath(filename)
    pieces = real.split(os.sep)
    if "site-packages" in pieces or "dist-packages" in pieces:
        return True
    return real.startswith(_library_roots())


def _is_library_module(module: types.ModuleType) -> bool:
    if _is_conveyor(getattr(module, "__name__", "")):
        return True
    filename = getattr(module, "__file__", None)
    if isinstance(filename, str):
        return _is_library_path(filename)
    name = getattr(module, "__name__", "")
    if name in sys.builtin_module_names or name.partition(".")[0] in sys.stdlib_module_names:
        return True
    locations = list(getattr(module, "__path__", ()) or ())
    if locations:  # a namespace package: judge by where it lives
        return all(_is_library_path(str(location)) for location in locations)
    return False  # no file at all: ``__main__`` in a notebook, a module built at run time


def _is_conveyor(name: str) -> bool:
    """Conveyor itself counts as a library even when installed editable from a checkout:
    its version identifies it, and the user's project is what the fingerprint is about."""
    return name == "conveyor" or name.startswith("conveyor.")


def _is_library_module_name(name: str) -> bool:
    module = sys.modules.get(name)
    if module is not None:
        return _is_library_module(module)
    return name.partition(".")[0] in sys.stdlib_module_names or name == "builtins"


def _is_library_function(fn: types.FunctionType) -> bool:
    if _is_conveyor(getattr(fn, "__module__", None) or ""):
        return True
    filename = fn.__code__.co_filename
    if filename.startswith("<frozen "):
        return True
    if os.path.isabs(filename):
        return _is_library_path(filename)
    # Code compiled from a string (dataclass __init__, namedtuple) belongs where its module does.
    return _is_library_module_name(getattr(fn, "__module__", None) or "")


@functools.cache
def _distribution_version(module_name: str) -> str:
    """``"<distribution> <version>"`` for the top-level package of ``module_name``.

    Cheapest first: a distribution named like the package (numpy, pandas), then the
    package's own ``__version__``, and only then the full package → distribution map,
    which reads every installed distribution's metadata (~150 ms once per process).
    """
    top = module_name.partition(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return "python " + ".".join(map(str, sys.version_info[:3]))
    import importlib.metadata  # ~20 ms (it loads the email package): only when a library is met

    try:
        dist = importlib.metadata.distribution(top)
        provided = (dist.read_text("top_level.txt") or top).split()
        if top in provided:
            return f"{dist.metadata['Name']} {dist.version}"
    except (importlib.metadata.PackageNotFoundError, ValueError):
        pass
    version = getattr(sys.modules.get(top), "__version__", None)
    if isinstance(version, str):
        return f"{top} {version}"
    for name in sorted(importlib.metadata.packages_distributions().get(top, ())):
        try:
            return f"{name} {importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return f"{top} (version unknown)"


# --- the walk -----------------------------------------------------------------------------

#: Globals that say where a module lives, not what it does: they differ between checkouts.
_LOCATION_NAMES = frozenset({"__file__", "__cached__", "__spec__", "__loader__", "__path__", "__builtins__"})

#: Class attributes that carry no behaviour, or only the interpreter's bookkeeping.
_CLASS_NOISE = frozenset(
    {
        "__dict__",
        "__weakref__",
        "__module__",
        "__qualname__",
        "__doc__",
        "__firstlineno__",
        "__static_attributes__",
        "__annotations__",
        "__annotate__",
        "__annotate_func__",
        "__annotations_cache__",
        "_abc_impl",
    }
)

_BUILTIN_CALLABLES = (
    types.BuiltinFunctionType,
    types.BuiltinMethodType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
)

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")

_CONTAINERS = frozenset({tuple, list, set, frozenset, dict})
#: A container with more elements than this that is not a plain literal is recorded by type.
_MAX_CONTAINER_REFS = 1_000


class _Walker:
    """One traversal: discovers references breadth-first and hashes each piece once.

    A piece gets its name (key) when it is first referenced and its token when it is
    processed, so a cycle only needs the key of a piece whose token is not known yet.
    Discovery follows sorted names, which makes keys, and hence the digest, deterministic.
    """

    def __init__(self) -> None:
        #: key → token, filled as pieces are processed.
        self.parts: dict[str, str] = {}
        #: id(obj) → key; valid because ``_owners`` keeps every keyed object alive.
        self._keys: dict[int, str] = {}
        self._owners: dict[str, object] = {}
        self._pending: deque[tuple[str, object]] = deque()
        #: ids of the containers being described right now, to stop at self-reference.
        self._open: set[int] = set()

    def drain(self) -> None:
        """Hash every discovered piece, discovering more on the way, until none is left."""
        while self._pending:
            key, obj = self._pending.popleft()
            if isinstance(obj, type):
                self.parts[key] = self._class_token(obj)
            else:
                self.parts[key] = self._function_token(obj)  # type: ignore[arg-type]

    # References: each returns a short, stable description that the referrer hashes.

    def ref(self, value: object, const_key: str | None = None) -> str:
        """Describe ``value`` for its referrer, queueing any project code it names.

        ``const_key`` names the module global or attribute the value was read from: a
        literal found there becomes a part of its own, so ``diff`` can name the constant.
        """
        if isinstance(value, types.FunctionType):
            return self._function_ref(value)
        if isinstance(value, type):
            return self._class_ref(value)
        if isinstance(value, types.ModuleType):
            if _is_library_module(value):
                self._external(value.__name__, value.__name__)
            return f"module {value.__name__}"
        encoded = literal(value)
        if encoded is not None:
            if const_key is None:
                return f"literal {encoded}"
            self.parts[const_key] = sha(encoded)
            return f"constant {const_key}"
        described = self._container_ref(value)
        if described is not None:
            return described
        if isinstance(value, types.MethodType):
            owner = value.__self__
            owner_class = owner if isinstance(owner, type) else type(owner)
            return f"method {self.ref(value.__func__)} of {self.ref(owner_class)}"
        if isinstance(value, (staticmethod, classmethod)):
            return f"{type(value).__name__} {self.ref(value.__func__)}"
        if isinstance(value, property):
            return f"property {self.ref(value.fget)} {self.ref(value.fset)} {self.ref(value.fdel)}"
        if isinstance(value, functools.partial):
            args = " ".join(self.ref(arg) for arg in value.args)
            keywords = " ".join(f"{k}={self.ref(v)}" for k, v in sorted(value.keywords.items()))
            return f"partial {self.ref(value.func)} ({args}) ({keywords})"
        if isinstance(value, _BUILTIN_CALLABLES):
            return self._builtin_ref(value)
        wrapped = _own_attribute(value, "__wrapped__")  # functools.lru_cache and friends
        if wrapped is not None and (_is_project(wrapped) or _is_project(type(value))):
            return f"wrapper {self.ref(type(value))} of {self.ref(wrapped)}"
        named = _library_name(value)  # numpy.mean, a ufunc, a Cython function
        if named is not None:
            key, module = named
            self._external(key, module)
            return f"external {key}"
        return f"object {self.ref(type(value))}"

    def _container_ref(self, value: object) -> str | None:
        """Describe a built-in container that holds code, e.g. a dispatch table of functions.

        Its elements are followed like any other reference. ``None`` for anything else,
        and for a container too large or already being described (it contains itself),
        which is then recorded by type only.
        """
        if not isinstance(value, (tuple, list, set, frozenset, dict)) or type(value) not in _CONTAINERS:
            return None  # subclasses (named tuples, OrderedDict, ...) are recorded by type
        if len(value) > _MAX_CONTAINER_REFS or id(value) in self._open:
            return None
        self._open.add(id(value))
        try:
            if isinstance(value, dict):
                items = sorted(f"{self.ref(k)}: {self.ref(v)}" for k, v in value.items())
            elif isinstance(value, (set, frozenset)):
                items = sorted(self.ref(item) for item in value)
            else:
                items = [self.ref(item) for item in value]
        finally:
            self._open.discard(id(value))
        return f"{type(value).__name__} [{', '.join(items)}]"

    def _function_ref(self, fn: types.FunctionType) -> str:
        known = self._keys.get(id(fn))
        if known is not None:
            return f"function {known}"
        wrapped = _own_attribute(fn, "__wrapped__")
        # functools.wraps copies the wrapped function's names onto the wrapper; a wrapper
        # is named after its own code instead, so that the two do not share a key.
        code_module = fn.__globals__.get("__name__")
        if not isinstance(code_module, str):
            code_module = getattr(fn, "__module__", None) or "?"
        own_name = f"{code_module}:{getattr(fn.__code__, 'co_qualname', fn.__qualname__)}"
        if _is_library_function(fn):
            if wrapped is not None and _is_project(wrapped):  # e.g. contextlib.contextmanager
                self._external(own_name, code_module)
                return f"external {own_name} of {self.ref(wrapped)}"
            module = getattr(fn, "__module__", None) or code_module
            key = f"{module}:{fn.__qualname__}"
            self._external(key, module)
            return f"external {key}"
        key = self._claim(fn, own_name if wrapped is not None else f"{code_module}:{fn.__qualname__}")
        return f"function {key}"

    def _class_ref(self, cls: type) -> str:
        known = self._keys.get(id(cls))
        if known is not None:
            return f"class {known}"
        module = getattr(cls, "__module__", None) or "?"
        key = f"{module}:{getattr(cls, '__qualname__', cls.__name__)}"
        if module == "builtins":
            return f"builtin {key}"
        if _is_library_module_name(module):
            self._external(key, module)
            return f"external {key}"
        return f"class {self._claim(cls, key)}"

    def _builtin_ref(self, value: object) -> str:
        module = getattr(value, "__module__", None)
        if module is None:  # a method of a C type: ``[].append``, ``str.join``
            owner = getattr(value, "__objclass__", None) or type(getattr(value, "__self__", None))
            module = getattr(owner, "__module__", None) or "builtins"
        qualname = getattr(value, "__qualname__", None) or getattr(value, "__name__", "?")
        key = f"{module}:{qualname}"
        if module == "builtins":
            return f"builtin {key}"
        self._external(key, module)
        return f"external {key}"

    def _claim(self, obj: object, base: str) -> str:
        """Give ``obj`` a key and queue it; a second object with the same name (two
        lambdas in one module, one decorator applied twice) gets ``#2``, ``#3``, ..."""
        key, n = base, 1
        while key in self._owners:
            n += 1
            key = f"{base}#{n}"
        self._owners[key] = obj
        self._keys[id(obj)] = key
        self._pending.append((key, obj))
        return key

    def _external(self, key: str, module: str) -> None:
        if key not in self.parts:
            self.parts[key] = _distribution_version(module)

    # Tokens: what one piece of project code is made of.

    def _function_token(self, fn: types.FunctionType) -> str:
        code = fn.__code__
        info = analyse(code)
        namespace = fn.__globals__
        builtin_names = fn.__builtins__ if isinstance(fn.__builtins__, dict) else vars(fn.__builtins__)
        module_name = namespace.get("__name__", "?")
        items = ["function", info.digest]
        modules: list[types.ModuleType] = []
        for name in info.globals:
            if name in _LOCATION_NAMES:
                items.append(f"global {name} (location)")
            elif name in namespace:
                value = namespace[name]
                items.append(f"global {name} = {self.ref(value, const_key=f'{module_name}:{name}')}")
                if isinstance(value, types.ModuleType):
                    modules.append(value)
            elif name not in builtin_names:
                items.append(f"global {name} missing")
        for name, level, fromlist in info.imports:
            items.append(self._import_item(name, level, fromlist, namespace, modules))
        for i, default in enumerate(fn.__defaults__ or ()):
            items.append(f"default {i} = {self.ref(default)}")
        for name, default in sorted((fn.__kwdefaults__ or {}).items()):
            items.append(f"default {name} = {self.ref(default)}")
        for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
            try:
                content = cell.cell_contents
            except ValueError:
                items.append(f"free {name} empty")
                continue
            items.append(f"free {name} = {self.ref(content)}")
            if isinstance(content, types.ModuleType):
                modules.append(content)
        wrapped = _own_attribute(fn, "__wrapped__")
        if wrapped is not None:
            items.append(f"wraps {self.ref(wrapped)}")
        seen: set[str] = set()
        for module in modules:
            self._module_attrs(module, info.attrs, items, seen)
        return sha("\0".join(items))

    def _module_attrs(
        self, module: types.ModuleType, attrs: tuple[str, ...], items: list[str], seen: set[str]
    ) -> None:
        """Resolve ``module.name`` for every attribute name the code uses.

        The bytecode says which names are read as attributes, not of what, so every such
        name is looked up on every module the function reaches: a few extra parts at
        worst, and no missed ones. ``vars()`` rather than ``getattr`` so that a lazy
        module ``__getattr__`` is never triggered by fingerprinting.
        """
        if module.__name__ in seen:
            return
        seen.add(module.__name__)
        if _is_library_module(module):
            # The module's distribution version covers what it holds; its attributes are
            # not walked, because which ones exist can depend on what was imported (lazy
            # module attributes), and the fingerprint must not.
            return
        namespace = vars(module)
        for name in attrs:
            if name not in namespace or name in _LOCATION_NAMES:
                continue
            value = namespace[name]
            items.append(
                f"attr {module.__name__}.{name} = {self.ref(value, const_key=f'{module.__name__}:{name}')}"
            )
            if isinstance(value, types.ModuleType):
                self._module_attrs(value, attrs, items, seen)

    def _import_item(
        self,
        name: str,
        level: int,
        fromlist: tuple[str, ...],
        namespace: dict[str, object],
        modules: list[types.ModuleType],
    ) -> str:
        """Resolve an ``import`` inside a function, as it would run, without importing
        third-party code (project code is imported: it must be loaded to be hashed)."""
        try:
            if level:
                package = (
                    namespace.get("__package__") or str(namespace.get("__name__", "")).rpartition(".")[0]
                )
                target = importlib.util.resolve_name("." * level + name, str(package))
            else:
                target = name
        except (ImportError, ValueError):
            return f"import {'.' * level}{name} unresolved"
        pieces = target.split(".")
        described = []
        for depth in range(1, len(pieces) + 1):
            module = self._load_module(".".join(pieces[:depth]))
            described.append(self.ref(module) if isinstance(module, types.ModuleType) else module)
            if isinstance(module, types.ModuleType):
                modules.append(module)
        if fromlist and isinstance(module, types.ModuleType) and not _is_library_module(module):
            for sub in fromlist:  # ``from pkg import submodule`` may be its first import
                if sub not in vars(module) and hasattr(module, "__path__"):
                    loaded = self._load_module(f"{target}.{sub}")
                    if isinstance(loaded, types.ModuleType):
                        modules.append(loaded)
        return f"import {target} = {' '.join(described)}"

    def _load_module(self, name: str) -> types.ModuleType | str:
        """The project module ``name`` (imported if needed), or a marker for anything else.

        A library module gets the same marker whether or not it is imported yet, so that
        an import inside a step gives the same key in a fresh process as in a warm one.
        """
        module = sys.modules.get(name)
        if module is not None and not _is_library_module(module):
            return module
        top = name.partition(".")[0]
        top_module = sys.modules.get(top)
        if top_module is not None:
            library = _is_library_module(top_module)
        else:
            try:
                spec = importlib.util.find_spec(top)
            except (ImportError, ValueError):
                spec = None
            if spec is None:
                return f"missing {name}"
            origin = spec.origin or ""
            library = origin in ("built-in", "frozen") or (bool(origin) and _is_library_path(origin))
        if library:
            self._external(name, name)
            return f"external {name}"
        try:
            return importlib.import_module(name)
        except Exception as exc:  # the step would fail the same way; the key records it
            return f"unimportable {name} ({type(exc).__name__})"

    def _class_token(self, cls: type) -> str:
        items = ["class", cls.__name__]
        items.extend(f"base {self.ref(base)}" for base in cls.__bases__)
        namespace = vars(cls)
        for name in sorted(namespace):
            if name not in _CLASS_NOISE and not _generated(name, namespace[name]):
                items.append(f"member {name} = {self.ref(namespace[name])}")
        annotations = namespace.get("__annotations__")
        if isinstance(annotations, dict):
            items.extend(f"annotation {name}: {_annotation_text(hint)}" for name, hint in annotations.items())
        items.extend(self._model_fields(namespace))
        return sha("\0".join(items))

    def _model_fields(self, namespace: Mapping[str, object]) -> list[str]:
        """pydantic moves field defaults out of the class body into ``__pydantic_fields__``,
        which :func:`_generated` skips: record each field's default from there."""
        fields = namespace.get("__pydantic_fields__")
        if not isinstance(fields, dict):
            return []
        items = []
        for name, info in sorted(fields.items()):
            default = getattr(info, "default", None)
            factory = getattr(info, "default_factory", None)
            shown = literal(default)
            described = shown if shown is not None else type_name(type(default))
            items.append(f"field {name} default {described} factory {self.ref(factory) if factory else '-'}")
        return items


def _generated(name: str, value: object) -> bool:
    """A dunder data attribute a framework derived from the class body (pydantic's
    ``__pydantic_core_schema__``, dataclasses' ``__dataclass_fields__``): it restates what
    the body already contributes, and may hold ``id()``-based text that differs per process.
    Dunder *methods* (``__init__``, ``__call__``) and literal values still count."""
    if not (name.startswith("__") and name.endswith("__")):
        return False
    code_like = isinstance(value, types.FunctionType | classmethod | staticmethod | property)
    return not code_like and literal(value) is None


def _is_project(value: object, depth: int = 0) -> bool:
    """True when ``value`` is (or wraps) code of this project rather than of a library."""
    if isinstance(value, types.FunctionType):
        return not _is_library_function(value)
    if isinstance(value, type):
        module = getattr(value, "__module__", None) or ""
        return module != "builtins" and not _is_library_module_name(module)
    if isinstance(value, types.MethodType):
        return _is_project(value.__func__, depth)
    wrapped = _own_attribute(value, "__wrapped__")
    return wrapped is not None and depth < 8 and _is_project(wrapped, depth + 1)


def _library_name(value: object) -> tuple[str, str] | None:
    """``("module:qualname", module)`` for a named object of a library type, else None."""
    kind = type(value)
    if not callable(value) or not _is_library_module_name(getattr(kind, "__module__", None) or ""):
        return None
    try:
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
        module = getattr(value, "__module__", None)
    except Exception:  # an exotic __getattr__; such an object is recorded by its type
        return None
    if not isinstance(name, str):
        return None
    if not isinstance(module, str):
        module = kind.__module__
    return f"{module}:{name}", module


def _own_attribute(value: object, name: str) -> object | None:
    """``value.__dict__[name]`` without running a custom ``__getattr__``."""
    try:
        namespace = object.__getattribute__(value, "__dict__")
    except AttributeError:
        return None
    return namespace.get(name) if isinstance(namespace, dict) else None


def _annotation_text(hint: object) -> str:
    if isinstance(hint, str):
        return hint
    if isinstance(hint, type):
        return type_name(hint)
    return _ADDRESS.sub("", repr(hint))
