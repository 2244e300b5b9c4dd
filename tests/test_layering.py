"""The layers of ``docs/architecture.md``, enforced: dependencies point one way only.

    store/, artifacts/   (storage: SQL, REST client, fsspec)
          ↑
       tracking/, pipelines/, models/, registry/, identity/, serving/   (capabilities)
          ↑
    server/      cli/    (edges: HTTP and the command line)

Every import counts, including those inside functions and ``TYPE_CHECKING`` blocks: a
lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "conveyor"

#: Folder of the package -> modules it must never import.
FORBIDDEN = {
    "store": (
        "conveyor.tracking",
        "conveyor.pipelines",
        "conveyor.models",
        "conveyor.identity",
        "conveyor.registry",
        "conveyor.serving",
        "conveyor.monitoring",
        "conveyor.server",
        "conveyor.cli",
    ),
    "artifacts": (
        "conveyor.tracking",
        "conveyor.pipelines",
        "conveyor.models",
        "conveyor.identity",
        "conveyor.registry",
        "conveyor.serving",
        "conveyor.monitoring",
        "conveyor.server",
        "conveyor.cli",
    ),
    "tracking": ("conveyor.server", "conveyor.cli"),
    "pipelines": ("conveyor.server", "conveyor.cli"),
    "models": ("conveyor.server", "conveyor.cli"),
    "registry": ("conveyor.server", "conveyor.cli"),
    "identity": ("conveyor.server", "conveyor.cli"),
    "serving": ("conveyor.server", "conveyor.cli"),
    "monitoring": ("conveyor.server", "conveyor.cli"),
    "server": ("conveyor.cli",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Absolute names of every module ``source`` imports, relative imports resolved."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # `from conveyor import server` imports the module conveyor.server.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def violations(top: str) -> list[str]:
    banned = FORBIDDEN[top]
    problems = []
    for path in sorted((PACKAGE / top).rglob("*.py")):
        module = module_name(path)
        for target in imported_modules(path.read_text(), module, is_package=path.name == "__init__.py"):
            if any(target == b or target.startswith(f"{b}.") for b in banned):
                problems.append(f"{path.relative_to(PACKAGE.parent)} imports {target}")
    return problems


@pytest.mark.parametrize("top", sorted(FORBIDDEN))
def test_layers_depend_one_way(top: str) -> None:
    assert (PACKAGE / top).is_dir(), f"conveyor/{top}/ is missing: update FORBIDDEN"
    assert violations(top) == []


def test_the_checker_sees_every_kind_of_import() -> None:
    source = """
import conveyor.server.app
from conveyor.cli import main
from conveyor import tracking
from ..tracking import client
from . import sibling
def lazy():
    from conveyor.server.app import create_app
"""
    found = imported_modules(source, "conveyor.store.thing")
    assert {
        "conveyor.server.app",
        "conveyor.cli",
        "conveyor.tracking",
        "conveyor.tracking.client",
        "conveyor.store.sibling",
    } <= found
    assert module_name(PACKAGE / "store" / "__init__.py") == "conveyor.store"
    assert imported_modules("from . import x", "conveyor.store", is_package=True) == {
        "conveyor.store",
        "conveyor.store.x",
    }
