"""The public surface of imsdk_server.notify is deliberate, and its core stays sans-IO."""

from __future__ import annotations

import ast
from pathlib import Path

import imsdk_server.notify as notify

EXPECTED = {
    "SCHEMA_VERSION", "Action", "DeviceLocation", "FrameSink", "InvalidNotification", "LoadPending",
    "NotificationRejected", "NotificationStore", "NotificationStoreError", "NotifyConfig", "NotifyCore",
    "NotifyError", "NotifyResult", "NotifyService", "NotifyStorageUnavailable", "Outcome", "Policy",
    "PresenceLookup", "Reply", "Report", "SQLNotificationStore", "SchemaMismatch", "SendFrame", "StoreAck",
    "StoreNotification", "StoredNotification", "UpsertResult", "effective_policy", "open_notification_store",
}  # fmt: skip

PACKAGE = Path(notify.__file__).parent
FORBIDDEN = ("anyio", "httpx", "redis", "pymysql", "sqlite3", "trio", "asyncio", "socket", "time")


def test_exported_names_are_pinned() -> None:
    assert set(notify.__all__) == EXPECTED
    assert len(notify.__all__) == len(EXPECTED)
    for name in notify.__all__:
        assert getattr(notify, name) is not None
    public = {n for n in vars(notify) if not n.startswith("_")} - {"conformance"}
    assert public == EXPECTED


def _imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_core_imports_no_io() -> None:
    """The core and everything of this package it imports touch no I/O library, clock or store driver."""
    seen: set[str] = set()
    todo = ["_core"]
    external: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in _imports(module):
            if name.startswith("imsdk_server.notify."):
                todo.append(name.rsplit(".", 1)[1])
            else:
                external.add(name)
    assert seen == {"_core", "_config", "_errors", "_records"}
    for name in external:
        assert name.split(".")[0] not in FORBIDDEN, name
        assert not name.startswith("imsdk_server.backends"), name
