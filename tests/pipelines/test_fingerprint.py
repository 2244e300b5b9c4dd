"""Code fingerprints: what changes the digest, what does not, and what ``diff`` reports.

Each test writes a tiny project (package ``fpdemo``) into a fresh folder, imports it, and
fingerprints a function from it. An "edit" is a second copy in another folder, imported
after the first one is forgotten: that also shows the file's location is not hashed.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import itertools
import os
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor.pipelines.fingerprint import PYTHON_PART, CodeFingerprint, diff, fingerprint

PACKAGE = "fpdemo"

BASE = {
    "fpdemo/__init__.py": "",
    "fpdemo/maths.py": """
        def double(x):
            return x * 2
    """,
    "fpdemo/features.py": """
        from fpdemo import maths

        def scale(x):
            return maths.double(x) + 1

        def shift(x):
            return maths.double(x) + 1
    """,
    "fpdemo/steps.py": """
        from fpdemo import features

        THRESHOLD = 3

        def step(values, k=2):
            total = 0
            for v in values:
                total += features.scale(v) * k
            return total > THRESHOLD
    """,
}

Loader = Callable[[dict[str, str]], types.ModuleType]


def edited(files: dict[str, str], path: str, old: str, new: str) -> dict[str, str]:
    """A copy of ``files`` with one replacement in one file (which must apply)."""
    text = textwrap.dedent(files[path])
    assert old in text, f"{old!r} not in {path}"
    return {**files, path: text.replace(old, new)}


def forget(package: str) -> None:
    for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        del sys.modules[name]


@pytest.fixture
def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Loader]:
    """Write a version of the project and import ``fpdemo.steps`` from it.

    Each call forgets the previous version (its modules and its ``sys.path`` entry), so
    two versions of the same code can be compared in one test.
    """
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    versions = itertools.count()
    roots: list[str] = []

    def _load(files: dict[str, str]) -> types.ModuleType:
        forget(PACKAGE)
        while roots:
            sys.path.remove(roots.pop())
        root = tmp_path / f"v{next(versions)}"
        for relative, text in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        sys.path.insert(0, str(root))
        roots.append(str(root))
        importlib.invalidate_caches()
        return importlib.import_module(f"{PACKAGE}.steps")

    yield _load
    forget(PACKAGE)
    for root in roots:
        sys.path.remove(root)


def step_fingerprint(load: Loader, files: dict[str, str]) -> CodeFingerprint:
    return fingerprint(load(files).step)


# --- what does not change the digest ------------------------------------------------------


def test_comments_whitespace_docstrings_and_location_leave_the_digest_alone(load: Loader) -> None:
    reformatted = {
        **BASE,
        "fpdemo/maths.py": '''
            """Arithmetic helpers."""


            def double(x):
                """Twice x; the docstring is not part of the key."""
                # a comment
                return x * 2   # trailing comment
        ''',
        "fpdemo/steps.py": '''
            """The steps of the demo pipeline."""
            from fpdemo import features

            # The limit, tuned by hand.
            THRESHOLD = 3


            def step(values, k=2):
                """Sum the scaled values and compare with the limit."""

                total = 0

                for v in values:
                    # scale, then weight
                    total += features.scale(
                        v
                    ) * k
                return total > THRESHOLD
        ''',
    }
    before = step_fingerprint(load, BASE)
    after = step_fingerprint(load, reformatted)  # also: another folder, so another file name
    assert after == before
    assert dict(after.parts) == dict(before.parts)
    assert diff(before.parts, after.parts).explain() == "code unchanged"


def test_the_same_function_twice_gives_the_same_fingerprint(load: Loader) -> None:
    step = load(BASE).step
    first, second = fingerprint(step), fingerprint(step)
    assert first == second
    assert len(first.digest) == 64 and int(first.digest, 16) >= 0
    assert list(first.parts) == sorted(first.parts)
    with pytest.raises(TypeError):
        first.parts["fpdemo.steps:step"] = "x"  # type: ignore[index]


# --- what does ----------------------------------------------------------------------------


def test_a_helper_two_calls_deep_changes_the_digest_and_diff_names_it(load: Loader) -> None:
    before = step_fingerprint(load, BASE)
    after = step_fingerprint(load, edited(BASE, "fpdemo/maths.py", "x * 2", "x * 3"))
    assert after.digest != before.digest
    change = diff(before.parts, after.parts)
    assert change.changed == ("fpdemo.maths:double",)
    assert change.added == change.removed == ()
    assert change.explain() == "changed: fpdemo.maths:double"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("total = 0", "total = 1"),  # a constant
        ("* k", "+ k"),  # an operator
        ("> THRESHOLD", ">= THRESHOLD"),  # a comparison
        ("k=2", "k=3"),  # a default argument
        ("for v in values", "for v in reversed(values)"),  # a builtin call added
    ],
    ids=["constant", "operator", "comparison", "default", "builtin-call"],
)
def test_an_edit_in_the_step_changes_the_digest(load: Loader, old: str, new: str) -> None:
    before = step_fingerprint(load, BASE)
    after = step_fingerprint(load, edited(BASE, "fpdemo/steps.py", old, new))
    assert after.digest != before.digest
    assert diff(before.parts, after.parts).changed == ("fpdemo.steps:step",)


def test_calling_another_function_with_the_same_body_changes_the_digest(load: Loader) -> None:
    before = step_fingerprint(load, BASE)
    after = step_fingerprint(load, edited(BASE, "fpdemo/steps.py", "features.scale(v)", "features.shift(v)"))
    assert after.digest != before.digest
    change = diff(before.parts, after.parts)
    assert change.added == ("fpdemo.features:shift",)
    assert change.removed == ("fpdemo.features:scale",)


def test_rebinding_a_global_to_another_function_changes_the_digest(load: Loader) -> None:
    files = {
        **BASE,
        "fpdemo/steps.py": """
            def first(x):
                return x + 1

            def second(x):
                return x - 1

            helper = first

            def step(x):
                return helper(x) + second(x)
        """,
    }
    before = step_fingerprint(load, files)
    after = step_fingerprint(load, edited(files, "fpdemo/steps.py", "helper = first", "helper = second"))
    assert after.digest != before.digest
    assert diff(before.parts, after.parts).changed == ("fpdemo.steps:step",)


def test_a_global_literal_is_a_part_of_its_own(load: Loader) -> None:
    before = step_fingerprint(load, BASE)
    assert "fpdemo.steps:THRESHOLD" in before.parts
    after = step_fingerprint(load, edited(BASE, "fpdemo/steps.py", "THRESHOLD = 3", "THRESHOLD = 4"))
    assert after.digest != before.digest
    assert diff(before.parts, after.parts).changed == ("fpdemo.steps:THRESHOLD",)


def test_container_literals_are_hashed_by_value(load: Loader) -> None:
    files = {
        **BASE,
        "fpdemo/steps.py": """
            LABELS = frozenset({"cat", "dog", "eel"})
            WEIGHTS = {"cat": 1.5, "dog": (2, 3)}

            def step(x):
                return x in LABELS and WEIGHTS[x]
        """,
    }
    before = step_fingerprint(load, files)
    after = step_fingerprint(load, edited(files, "fpdemo/steps.py", "(2, 3)", "(2, 4)"))
    assert diff(before.parts, after.parts).changed == ("fpdemo.steps:WEIGHTS",)


# --- libraries ----------------------------------------------------------------------------


def test_library_calls_contribute_their_name_and_version_only(load: Loader) -> None:
    files = {
        **BASE,
        "fpdemo/steps.py": """
            import numpy as np
            from statistics import fmean

            def step(values):
                return np.mean(values) + fmean(values) + len(values)
        """,
    }
    parts = step_fingerprint(load, files).parts
    numpy_version = f"numpy {importlib.metadata.version('numpy')}"
    python_version = "python " + ".".join(map(str, sys.version_info[:3]))
    assert parts["numpy"] == numpy_version  # the module: its attributes come with its version
    assert "numpy:mean" not in parts
    assert parts["statistics:fmean"] == python_version  # imported by name: recorded by name
    library = {name: token for name, token in parts.items() if not name.startswith(("fpdemo.", "<"))}
    assert set(library.values()) == {numpy_version, python_version}  # names and versions, no hashes
    assert not any(name.startswith("builtins") for name in parts)  # len() is not recorded
    assert parts[PYTHON_PART].startswith(sys.implementation.cache_tag)


def test_framework_generated_class_attributes_do_not_count(load: Loader) -> None:
    """pydantic stores a core schema holding ``id()``-based text on each model class: a fresh
    import (another process) must still give the same digest."""
    files = {
        **BASE,
        "fpdemo/steps.py": """
            from pydantic import BaseModel

            class Config(BaseModel):
                C: float = 1.0

            def step(n):
                return Config(C=n).C
        """,
    }
    first = step_fingerprint(load, files)
    assert step_fingerprint(load, files) == first  # a new class object, same code
    changed = {
        **files,
        "fpdemo/steps.py": files["fpdemo/steps.py"].replace("C: float = 1.0", "C: float = 2.0"),
    }
    assert step_fingerprint(load, changed) != first


def test_an_import_inside_a_step_gives_the_same_digest_before_and_after_it_ran(load: Loader) -> None:
    files = {
        **BASE,
        "fpdemo/steps.py": """
            def step(values):
                import colorsys
                return colorsys.rgb_to_hsv(*values)
        """,
    }
    sys.modules.pop("colorsys", None)
    before = step_fingerprint(load, files)
    import colorsys  # noqa: F401 - the step's import has now run in this process

    assert step_fingerprint(load, files) == before


def test_lazy_library_attributes_do_not_change_the_fingerprint(load: Loader) -> None:
    """``conveyor.log_metric`` is resolved by a module ``__getattr__`` on first use: whether
    that happened already must not change the key (Conveyor counts as a library)."""
    import conveyor

    files = {
        **BASE,
        "fpdemo/steps.py": """
            import conveyor

            def step(values):
                conveyor.log_metric("n", len(values))
                return values
        """,
    }
    before = step_fingerprint(load, files)
    conveyor.__dict__.pop("log_metric", None)
    assert conveyor.log_metric is not None  # resolves the lazy attribute
    after = step_fingerprint(load, files)
    assert before == after
    assert not any(name.startswith("conveyor.") for name in after.parts)


def test_an_opaque_global_is_recorded_by_type(load: Loader) -> None:
    files = {
        **BASE,
        "fpdemo/steps.py": """
            import re

            PATTERN = re.compile("a+")

            def step(text):
                return PATTERN.findall(text)
        """,
    }
    parts = step_fingerprint(load, files).parts
    assert parts["re:Pattern"].startswith("python ")
    assert "fpdemo.steps:PATTERN" not in parts


# --- shapes of code -----------------------------------------------------------------------


def test_mutual_recursion_terminates_and_both_functions_count(load: Loader) -> None:
    files = {
        **BASE,
        "fpdemo/steps.py": """
            def is_even(n):
                return True if n == 0 else is_odd(n - 1)

            def is_odd(n):
                return False if n == 0 else is_even(n - 1)

            def step(n):
                return is_even(n)
        """,
    }
    before = step_fingerprint(load, files)
    assert {"fpdemo.steps:is_even", "fpdemo.steps:is_odd", "fpdemo.steps:step"} <= set(before.parts)
    after = step_fingerprint(load, edited(files, "fpdemo/steps.py", "False if", "None if"))
    assert diff(before.parts, after.parts).changed == ("fpdemo.steps:is_odd",)


def test_closures_are_followed_into_their_cells(load: Loader) -> None:
    files = {
        **BASE,
        "fpdemo/steps.py": """
            def helper(x):
                return x + 1

            def make(fn, offset):
                def inner(x):
                    return fn(x) + offset
                return inner

            step = make(helper, 5)
        """,
    }
    before = step_fingerprint(load, files)
    helper_edit = step_fingerprint(load, edited(files, "fpdemo/steps.py", "x + 1", "x + 2"))
    assert diff(before.parts, helper_edit.parts).changed == ("fpdemo.steps:helper",)
    cell_edit = step_fingerprint(load, edited(files, "fpdemo/steps.py", "(helper, 5)", "(helper, 6)"))
    assert diff(before.parts, cell_edit.parts).changed == ("fpdemo.steps:make.<locals>.inner",)


def test_decorated_functions_are_followed_through_the_wrapper(load: Loader) -> None:
    files = {
        **BASE,
        "fpdemo/steps.py": """
            import functools

            def logged(fn):
                @functools.wraps(fn)
                def wrapper(*args, **kwargs):
                    return fn(*args, **kwargs)
                return wrapper

            @functools.lru_cache(maxsize=None)
            def cached(x):
                return x * 2

            @logged
            def step(x):
                return cached(x) + 1
        """,
    }
    before = step_fingerprint(load, files)
    # The wrapper is named after its own code, so it does not collide with ``step``.
    assert {"fpdemo.steps:logged.<locals>.wrapper", "fpdemo.steps:step", "fpdemo.steps:cached"} <= set(
        before.parts
    )
    inner = step_fingerprint(load, edited(files, "fpdemo/steps.py", "x * 2", "x * 4"))
    assert diff(before.parts, inner.parts).changed == ("fpdemo.steps:cached",)
    body = step_fingerprint(load, edited(files, "fpdemo/steps.py", "cached(x) + 1", "cached(x) + 2"))
    assert diff(before.parts, body.parts).changed == ("fpdemo.steps:step",)
    decorator = step_fingerprint(load, edited(files, "fpdemo/steps.py", "fn(*args, **kwargs)", "fn(*args)"))
    assert diff(before.parts, decorator.parts).changed == ("fpdemo.steps:logged.<locals>.wrapper",)


def test_a_dispatch_table_of_functions_is_followed(load: Loader) -> None:
    files = {
        **BASE,
        "fpdemo/steps.py": """
            def mean(xs):
                return sum(xs) / len(xs)

            def peak(xs):
                return max(xs)

            REDUCERS = {"mean": mean, "peak": peak}

            def step(xs, how="mean"):
                return REDUCERS[how](xs)
        """,
    }
    before = step_fingerprint(load, files)
    after = step_fingerprint(load, edited(files, "fpdemo/steps.py", "max(xs)", "min(xs)"))
    assert diff(before.parts, after.parts).changed == ("fpdemo.steps:peak",)


def test_library_decorators_around_project_code_are_seen_through(load: Loader) -> None:
    files = {
        **BASE,
        "fpdemo/steps.py": """
            import contextlib

            @contextlib.contextmanager
            def opened(x):
                yield x + 1

            def step(x):
                with opened(x) as y:
                    return y
        """,
    }
    before = step_fingerprint(load, files)
    assert before.parts["contextlib:contextmanager.<locals>.helper"].startswith("python ")
    after = step_fingerprint(load, edited(files, "fpdemo/steps.py", "x + 1", "x + 2"))
    assert diff(before.parts, after.parts).changed == ("fpdemo.steps:opened",)


def test_lambdas_are_hashed_and_two_of_them_get_distinct_names(load: Loader) -> None:
    files = {
        **BASE,
        "fpdemo/steps.py": """
            double = lambda x: x * 2
            triple = lambda x: x * 3

            def step(x):
                return double(x) + triple(x) + sum(map(lambda y: y + 1, [x]))
        """,
    }
    before = step_fingerprint(load, files)
    assert {"fpdemo.steps:<lambda>", "fpdemo.steps:<lambda>#2"} <= set(before.parts)
    after = step_fingerprint(load, edited(files, "fpdemo/steps.py", "x * 3", "x * 5"))
    assert diff(before.parts, after.parts).changed == ("fpdemo.steps:<lambda>#2",)
    nested = step_fingerprint(load, edited(files, "fpdemo/steps.py", "y + 1", "y + 9"))
    assert diff(before.parts, nested.parts).changed == ("fpdemo.steps:step",)
    assert fingerprint(load(files).double) != fingerprint(load(files).triple)


def test_classes_contribute_their_methods_and_attributes(load: Loader) -> None:
    files = {
        **BASE,
        "fpdemo/steps.py": """
            class Scaler:
                factor = 2

                def __init__(self, k):
                    self.k = k

                def apply(self, x):
                    return x * self.k * self.factor

            def step(x):
                return Scaler(3).apply(x)
        """,
    }
    before = step_fingerprint(load, files)
    method = step_fingerprint(load, edited(files, "fpdemo/steps.py", "x * self.k", "x + self.k"))
    assert diff(before.parts, method.parts).changed == ("fpdemo.steps:Scaler.apply",)
    attribute = step_fingerprint(load, edited(files, "fpdemo/steps.py", "factor = 2", "factor = 3"))
    assert diff(before.parts, attribute.parts).changed == ("fpdemo.steps:Scaler",)


def test_imports_inside_the_step_are_followed_even_before_first_use(load: Loader) -> None:
    files = {
        **BASE,
        "fpdemo/late.py": """
            def late(x):
                return x - 1
        """,
        "fpdemo/steps.py": """
            def step(x):
                from fpdemo import late
                from fpdemo.maths import double
                return late.late(double(x))
        """,
    }
    step = load(files).step
    assert "fpdemo.late" not in sys.modules
    before = fingerprint(step)
    assert {"fpdemo.late:late", "fpdemo.maths:double"} <= set(before.parts)
    after = step_fingerprint(load, edited(files, "fpdemo/late.py", "x - 1", "x - 2"))
    assert diff(before.parts, after.parts).changed == ("fpdemo.late:late",)


def test_other_callables_can_be_the_root(load: Loader) -> None:
    files = {
        **BASE,
        "fpdemo/steps.py": """
            class Model:
                def predict(self, x):
                    return x + 1

                def __call__(self, x):
                    return self.predict(x)

            def step(x, k):
                return x * k
        """,
    }
    steps = load(files)
    model = steps.Model()
    for root in (model.predict, model, steps.Model, functools.partial(steps.step, k=2)):
        parts = fingerprint(root).parts
        assert any(name.startswith("fpdemo.steps:") for name in parts), root
    assert fingerprint(functools.partial(steps.step, k=2)) != fingerprint(functools.partial(steps.step, k=3))
    with pytest.raises(TypeError, match="needs a callable"):
        fingerprint(42)  # type: ignore[arg-type]


# --- across processes and speed -----------------------------------------------------------

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from conveyor.pipelines.fingerprint import fingerprint
import fpdemo.steps
print(fingerprint(fpdemo.steps.step).digest)
"""


def test_the_digest_is_the_same_in_fresh_processes_whatever_the_hash_seed(
    load: Loader, tmp_path: Path
) -> None:
    files = {
        **BASE,
        "fpdemo/steps.py": """
            from fpdemo import features

            NAMES = frozenset({"alpha", "beta", "gamma", "delta"})
            TABLE = {"x": {"p", "q", "r"}, "y": (1.5, None, b"z")}

            def step(values):
                kept = [v for v in values if v in {"alpha", "omega", "zeta"}]
                return [features.scale(len(v)) for v in kept if v in NAMES], TABLE
        """,
    }
    here = step_fingerprint(load, files).digest
    root = sys.path[0]  # the folder ``load`` wrote this version to
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONDONTWRITEBYTECODE": "1"}
        result = subprocess.run(
            [sys.executable, "-c", PROBE, root],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        digests.add(result.stdout.strip())
    assert digests == {here}


def test_twenty_project_functions_fingerprint_in_a_few_milliseconds(load: Loader) -> None:
    helpers = "\n".join(
        f"def helper{i}(x):\n    y = x * {i} + LIMIT\n    return helper{i + 1}(y) if y < 100 else y\n"
        for i in range(20)
    )
    files = {
        **BASE,
        "fpdemo/steps.py": f"LIMIT = 3\n\n{helpers}\ndef helper20(x):\n    return x\n\nstep = helper0\n",
    }
    step = load(files).step
    started = time.perf_counter()
    cold = fingerprint(step)
    cold_s = time.perf_counter() - started
    warm_timings = []
    for _ in range(5):
        started = time.perf_counter()
        warm = fingerprint(step)
        warm_timings.append(time.perf_counter() - started)
    assert warm == cold and len(cold.parts) == 23  # 21 helpers, LIMIT, <python>
    # Generous bounds (far above what a laptop measures: ~2 ms cold, ~0.2 ms warm), and the
    # best of several warm runs, so that a busy CI host passes; a regression to the
    # seconds-per-step range still fails.
    assert cold_s < 0.25, f"cold fingerprint took {cold_s * 1000:.1f} ms"
    assert min(warm_timings) < 0.01, f"warm fingerprint took {min(warm_timings) * 1000:.1f} ms"


# --- diff ---------------------------------------------------------------------------------


def test_diff_sorts_names_and_shows_library_versions() -> None:
    old = {"b:f": "1" * 64, "a:g": "2" * 64, "numpy:mean": "numpy 2.4.6", "gone:h": "3" * 64}
    new = {"b:f": "9" * 64, "a:g": "2" * 64, "numpy:mean": "numpy 2.5.0", "new:k": "4" * 64}
    change = diff(old, new)
    assert change.changed == ("b:f", "numpy:mean")
    assert change.added == ("new:k",)
    assert change.removed == ("gone:h",)
    assert not change.unchanged
    assert change.explain() == (
        "changed: b:f, numpy:mean (numpy 2.4.6 → numpy 2.5.0)\nadded: new:k\nremoved: gone:h"
    )
    assert diff(new, new).unchanged
