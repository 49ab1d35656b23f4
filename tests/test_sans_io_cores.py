"""Every sans-IO core stays free of I/O: neither it nor any project module it imports pulls in a network,
database, clock-reading or async library.

The check is static (the import statements of each module, followed through the project's own modules), so a
core cannot acquire I/O indirectly through a helper it imports. Package ``__init__`` modules are not followed:
they re-export drivers beside their cores, and importing a core never needs them.
"""

from __future__ import annotations

import ast
import importlib.util
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CORES = [
    "imsdk_proto._frame",
    "imsdk_client._core.session",
    "imsdk_client._core.race",
    "imsdk_client._core.reorder",
    "imsdk_client._core.heartbeat",
    "imsdk_client._core.backoff",
    "imsdk_client._core.sequencing",
    "imsdk_server.access._core",
    "imsdk_server.access_manager._ranking",
    "imsdk_server.access_manager._table",
    "imsdk_server.links._core",
    "imsdk_server.links._detector",
    "imsdk_server.location._core",
    "imsdk_server.routing._core",
    "imsdk_server.notify._core",
    "imsdk_server.allinone._watch_core",
]

FORBIDDEN = {
    "anyio", "asyncio", "trio", "socket", "ssl", "selectors", "time", "subprocess",
    "httpx", "redis", "pymysql", "sqlite3", "kazoo", "starlette", "uvicorn", "uvloop",
}  # fmt: skip


def _module_path(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # ``from module import Name``: the name is not a module
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    path = Path(spec.origin)
    return path if ROOT in path.parents else None


@cache
def _imports(name: str) -> frozenset[str]:
    path = _module_path(name)
    if path is None:
        return frozenset()
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(found)


def _reachable_io(core: str) -> dict[str, str]:
    """Forbidden top-level modules reachable from ``core``, each with the project module that imports it."""
    seen: set[str] = set()
    todo = [core]
    offenders: dict[str, str] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for imported in _imports(name):
            top = imported.partition(".")[0]
            if top in FORBIDDEN:
                offenders.setdefault(top, name)
            elif top.startswith("imsdk_") and _module_path(imported) is not None:
                path = _module_path(imported)
                if path is not None and path.name != "__init__.py":
                    todo.append(imported)
    return offenders


@pytest.mark.parametrize("core", CORES)
def test_core_imports_no_io(core: str) -> None:
    assert _module_path(core) is not None, f"{core} does not exist"
    assert _reachable_io(core) == {}


def test_the_check_sees_io() -> None:
    """The check itself can fail: a driver module is found to import I/O."""
    assert "anyio" in _reachable_io("imsdk_server.links._driver")
