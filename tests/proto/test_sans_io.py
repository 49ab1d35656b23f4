"""The codec is sans-IO: no module of imsdk_proto imports sockets, event loops, clients or clocks."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import imsdk_proto

FORBIDDEN = {
    "socket",
    "ssl",
    "anyio",
    "asyncio",
    "trio",
    "httpx",
    "redis",
    "pymysql",
    "kazoo",
    "time",
    "select",
}
PACKAGE = Path(imsdk_proto.__file__).parent
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "_generated" not in p.parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_sources_were_found() -> None:
    assert len(SOURCES) >= 10


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_io_or_clock_imports(path: Path) -> None:
    assert not (_imports(path) & FORBIDDEN)


def test_importing_the_codec_loads_no_event_loop_or_client() -> None:
    code = (
        "import sys, imsdk_proto, imsdk_proto.codes, imsdk_proto.errors, imsdk_proto.messages, "
        "imsdk_proto._frame, imsdk_proto.samples;"
        "names = ('anyio', 'asyncio', 'trio', 'httpx', 'redis', 'pymysql');"
        "print(','.join(sorted(m for m in names if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
