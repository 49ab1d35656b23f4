"""The public surface is deliberate, and the pure parts import nothing that does I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import imsdk_server.auth
import imsdk_server.backends.cache
from imsdk_proto.codes import ErrorCode
from imsdk_proto.errors import CodedError

ROOT = Path(__file__).resolve().parents[2]


def test_auth_exports_are_pinned() -> None:
    assert sorted(imsdk_server.auth.__all__) == sorted(
        [
            "AuthConfig",
            "AuthError",
            "AuthEvent",
            "AuthEvents",
            "AuthService",
            "BadCredentials",
            "BodyTooLarge",
            "Claims",
            "ClientInfo",
            "FieldTooLarge",
            "FriendAdded",
            "FriendRemoved",
            "InvalidRequest",
            "IssuedToken",
            "KeyRing",
            "LoginThrottle",
            "OpaqueTokenStore",
            "PasswordHasher",
            "Profile",
            "ProfileChanged",
            "RevocationList",
            "RevocationSet",
            "SCHEMA_VERSION",
            "SQLUserStore",
            "SchemaTooNew",
            "ScryptParams",
            "ServiceUnavailable",
            "Subscriber",
            "ThrottleRule",
            "Throttled",
            "TokenCodec",
            "TokenFault",
            "TokenInvalid",
            "TokenKey",
            "TokenVerifier",
            "TooManyFriends",
            "User",
            "UserExists",
            "UserLoggedIn",
            "UserLoggedOut",
            "UserNotFound",
            "UserStore",
            "create_auth_app",
            "load_or_create_key_ring",
            "serve_auth",
            "serve_auth_service",
        ]
    )
    for name in imsdk_server.auth.__all__:
        assert getattr(imsdk_server.auth, name) is not None


def test_auth_and_access_manager_errors_grow_from_coded_error() -> None:
    from imsdk_server.access_manager import AccessManagerError, NoAccessPoints

    assert issubclass(imsdk_server.auth.AuthError, CodedError)
    assert issubclass(AccessManagerError, CodedError)
    exc = imsdk_server.auth.Throttled(7)
    assert (exc.code, exc.message, exc.retry_after) == (
        ErrorCode.AUTH_THROTTLED,
        "too many attempts, retry later",
        7,
    )
    assert NoAccessPoints("none").code is ErrorCode.NO_ACCESS_POINTS


def test_cache_exports_are_pinned() -> None:
    assert sorted(imsdk_server.backends.cache.__all__) == [
        "Cache",
        "CacheFull",
        "CacheUnavailable",
        "MemoryCache",
        "RedisCache",
    ]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
            if node.module.startswith("imsdk_server"):
                names.add(node.module)
    return names


def test_pure_modules_do_no_io() -> None:
    forbidden = {
        "anyio",
        "httpx",
        "redis",
        "pymysql",
        "sqlite3",
        "starlette",
        "uvicorn",
        "socket",
        "asyncio",
        "trio",
    }
    for module in ("_tokens", "_throttle", "_errors", "_validation", "_passwords"):
        imported = _imports(ROOT / "imsdk_server" / "auth" / f"{module}.py")
        assert not imported & forbidden, (module, imported & forbidden)
        others = {m for m in imported if m.startswith("imsdk_server.")}
        assert others <= {"imsdk_server.auth._errors"}, (module, others)
