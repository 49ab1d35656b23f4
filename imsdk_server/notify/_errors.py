"""The notification server's error tree; each error carries the wire code it maps to.

::

    NotifyError                    .code: ErrorCode
    ├── NotificationRejected       the notification or frame is refused (MALFORMED_BODY, PAYLOAD_TOO_LARGE,
    │                              FORBIDDEN, FORGED_SENDER, UNKNOWN_RECEIVER, UNEXPECTED_MESSAGE)
    └── NotifyStorageUnavailable   the store could not commit; nothing was pushed; retry with the same id
                                   (STORAGE_UNAVAILABLE)

The store's own errors (:class:`~imsdk_server.notify.NotificationStoreError`) and the SQL layer's
(:class:`~imsdk_server.backends.sql.StorageUnavailable`) are mapped onto these at the service boundary.
"""

from __future__ import annotations

from imsdk_proto.codes import ErrorCode
from imsdk_proto.errors import CodedError

__all__ = ["NotificationRejected", "NotifyError", "NotifyStorageUnavailable"]


class NotifyError(CodedError):
    """Base of the notification server's errors; :attr:`code` is the wire error code."""


class NotificationRejected(NotifyError):
    """A notification (or a frame) was refused; :attr:`code` says why."""

    code = ErrorCode.MALFORMED_BODY


class NotifyStorageUnavailable(NotifyError):
    """The store could not commit a stored-type notification; it was not pushed either."""

    code = ErrorCode.STORAGE_UNAVAILABLE
