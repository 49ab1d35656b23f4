"""The package's public surface, and the sans-IO rule: the cores import no I/O library and read no clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import imsdk_server.links as links

CORES = ["_detector.py", "_core.py", "_errors.py"]
FORBIDDEN = {"anyio", "asyncio", "trio", "socket", "ssl", "time", "selectors", "httpx", "redis", "pymysql"}


def test_exported_names_are_pinned() -> None:
    assert sorted(links.__all__) == [
        "Deregistrar",
        "DetectorConfig",
        "DrainReport",
        "FailureDetector",
        "FrameHandler",
        "Health",
        "HealthCallback",
        "IllegalTransition",
        "Link",
        "LinkBusy",
        "LinkClosed",
        "LinkConfig",
        "LinkCore",
        "LinkError",
        "LinkHub",
        "LinkIdentity",
        "LinkNotReady",
        "LinkRejected",
        "LinkState",
    ]
    for name in links.__all__:
        obj = getattr(links, name)
        if isinstance(obj, type):  # FrameHandler is a Callable alias
            assert obj.__module__.startswith("imsdk_server.links._")


@pytest.mark.parametrize("module", CORES)
def test_cores_are_sans_io(module: str) -> None:
    tree = ast.parse((Path(links.__file__).parent / module).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN
    assert imported <= {"__future__", "dataclasses", "enum", "math", "imsdk_proto", "imsdk_server"}
