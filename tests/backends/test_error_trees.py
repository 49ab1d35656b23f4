"""Every error tree of the backends, links, notify and location grows from the one ``CodedError`` root.

Each public error class carries the wire :class:`~imsdk_proto.codes.ErrorCode` it maps to, a message, a
per-instance code override and the shared repr; no package keeps its own copy of that base code.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from imsdk_proto.codes import ErrorCode
from imsdk_proto.errors import CodedError

PACKAGES = [
    "imsdk_server.backends.cache",
    "imsdk_server.backends.queue",
    "imsdk_server.backends.registry",
    "imsdk_server.backends.sql",
    "imsdk_server.links",
    "imsdk_server.location",
    "imsdk_server.notify",
]


def _errors(module: ModuleType) -> list[type[BaseException]]:
    found = [getattr(module, name) for name in module.__all__]
    return [obj for obj in found if isinstance(obj, type) and issubclass(obj, BaseException)]


ERRORS = sorted(
    {cls for pkg in PACKAGES for cls in _errors(importlib.import_module(pkg))},
    key=lambda c: f"{c.__module__}.{c.__qualname__}",
)


def test_every_package_exports_errors() -> None:
    for pkg in PACKAGES:
        assert _errors(importlib.import_module(pkg)), pkg


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_error_is_coded(cls: type[BaseException]) -> None:
    assert issubclass(cls, CodedError)
    assert isinstance(cls.code, ErrorCode)
    err = cls("something broke")
    assert err.message == "something broke"
    assert str(err) == "something broke"
    assert repr(err) == f"{cls.__name__}('something broke', code={cls.code.name})"
    assert cls("again", ErrorCode.NOT_FOUND).code is ErrorCode.NOT_FOUND
    assert cls("class default").code is cls.code
    # The base behaviour comes from the root, not from a copy in the package.
    assert "__init__" not in vars(cls)
    assert "__repr__" not in vars(cls)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("imsdk_server.backends.registry.RegistryError", ErrorCode.INTERNAL),
        ("imsdk_server.backends.registry.RegistryUnavailable", ErrorCode.STORAGE_UNAVAILABLE),
        ("imsdk_server.backends.registry.RegistryClosed", ErrorCode.SERVER_SHUTTING_DOWN),
        ("imsdk_server.backends.registry.AlreadyRegistered", ErrorCode.DUPLICATE),
        ("imsdk_server.backends.registry.NotRegistered", ErrorCode.NOT_FOUND),
        ("imsdk_server.backends.registry.IllegalStateTransition", ErrorCode.UNEXPECTED_MESSAGE),
        ("imsdk_server.backends.registry.InvalidRegistryData", ErrorCode.MALFORMED_BODY),
        ("imsdk_server.backends.queue.QueueError", ErrorCode.INTERNAL),
        ("imsdk_server.backends.queue.QueueUnavailable", ErrorCode.STORAGE_UNAVAILABLE),
        ("imsdk_server.backends.queue.QueueClosed", ErrorCode.SERVER_SHUTTING_DOWN),
        ("imsdk_server.backends.queue.QueueBackendError", ErrorCode.INTERNAL),
        ("imsdk_server.backends.queue.InvalidQueueArgument", ErrorCode.MALFORMED_BODY),
        ("imsdk_server.backends.sql.SQLError", ErrorCode.INTERNAL),
        ("imsdk_server.backends.sql.StorageUnavailable", ErrorCode.STORAGE_UNAVAILABLE),
        ("imsdk_server.backends.sql.IntegrityViolation", ErrorCode.DUPLICATE),
        ("imsdk_server.backends.cache.CacheUnavailable", ErrorCode.STORAGE_UNAVAILABLE),
        ("imsdk_server.backends.cache.CacheFull", ErrorCode.STORAGE_UNAVAILABLE),
        ("imsdk_server.links.LinkError", ErrorCode.INTERNAL),
        ("imsdk_server.links.LinkNotReady", ErrorCode.LINK_NOT_READY),
        ("imsdk_server.links.LinkBusy", ErrorCode.SLOW_CONSUMER),
        ("imsdk_server.links.LinkRejected", ErrorCode.FORBIDDEN),
        ("imsdk_server.links.IllegalTransition", ErrorCode.UNEXPECTED_MESSAGE),
        ("imsdk_server.location.InvalidPresenceEvent", ErrorCode.MALFORMED_BODY),
        ("imsdk_server.location.PresenceStoreUnavailable", ErrorCode.STORAGE_UNAVAILABLE),
        ("imsdk_server.location.SubscriberOverflow", ErrorCode.SLOW_CONSUMER),
        ("imsdk_server.notify.NotifyStorageUnavailable", ErrorCode.STORAGE_UNAVAILABLE),
        ("imsdk_server.notify.NotificationRejected", ErrorCode.MALFORMED_BODY),
        ("imsdk_server.notify.InvalidNotification", ErrorCode.MALFORMED_BODY),
        ("imsdk_server.notify.SchemaMismatch", ErrorCode.INTERNAL),
    ],
)
def test_wire_codes(name: str, code: ErrorCode) -> None:
    module, _, attr = name.rpartition(".")
    assert getattr(importlib.import_module(module), attr).code is code


def test_value_errors_stay_value_errors() -> None:
    from imsdk_server.backends.queue import InvalidQueueArgument
    from imsdk_server.backends.registry import InvalidRegistryData
    from imsdk_server.location import InvalidPresenceEvent

    for cls in (InvalidQueueArgument, InvalidRegistryData, InvalidPresenceEvent):
        with pytest.raises(ValueError, match="bad"):
            raise cls("bad")
