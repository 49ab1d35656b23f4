"""``pip install imsdk`` without extras must give a working suite on the embedded defaults.

The real engines' client libraries (redis, pymysql, kazoo), uvloop and what only the development extras bring
(trio, sniffio, psutil, pytest, hypothesis) are hidden from a fresh interpreter, which then imports every
module of the three packages. Only the modules that *are* a real-engine backend may need their extra, and even
they must import without it (the library is imported when such a backend is created).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HIDDEN = ["redis", "pymysql", "kazoo", "uvloop", "trio", "sniffio", "psutil", "pytest", "hypothesis"]

HIDE = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys

    HIDDEN = set(sys.argv[1].split(","))

    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in HIDDEN:
                raise ModuleNotFoundError(f"No module named {name!r} (hidden: not a core dependency)")
            return None

    sys.meta_path.insert(0, Hide())
    """
)

SCRIPT = HIDE + textwrap.dedent(
    """
    failed = []
    for top in ("imsdk_proto", "imsdk_client", "imsdk_server"):
        package = importlib.import_module(top)
        for info in pkgutil.walk_packages(package.__path__, top + "."):
            try:
                importlib.import_module(info.name)
            except ImportError as exc:
                failed.append(f"{info.name}: {exc}")
    print("\\n".join(failed))
    sys.exit(1 if failed else 0)
    """
)


def test_every_module_imports_with_core_dependencies_only() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(HIDDEN)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_check_sees_a_hidden_import() -> None:
    """The hiding itself works: a module that imports a hidden library fails to import."""
    script = HIDE + "import redis\n"
    proc = subprocess.run([sys.executable, "-c", script, "redis"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "hidden: not a core dependency" in proc.stderr
