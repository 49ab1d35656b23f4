"""The notification server: online users get notifications at once; offline users get the latest per type.

A sans-IO core (:class:`NotifyCore`) decides what is pushed, stored, dropped and delivered at login; a
:class:`NotificationStore` keeps the latest stored notification per ``(uid, type, merge_key)`` (SQLite or
MySQL); :class:`NotifyService` runs both on anyio with the location service as its source of presence. See
``docs/notifications.md``.
"""

# Configuration
from imsdk_server.notify._config import NotifyConfig as NotifyConfig
from imsdk_server.notify._config import Policy as Policy

# Core
from imsdk_server.notify._core import Action as Action
from imsdk_server.notify._core import DeviceLocation as DeviceLocation
from imsdk_server.notify._core import LoadPending as LoadPending
from imsdk_server.notify._core import NotifyCore as NotifyCore
from imsdk_server.notify._core import Outcome as Outcome
from imsdk_server.notify._core import Reply as Reply
from imsdk_server.notify._core import Report as Report
from imsdk_server.notify._core import SendFrame as SendFrame
from imsdk_server.notify._core import StoreAck as StoreAck
from imsdk_server.notify._core import StoreNotification as StoreNotification
from imsdk_server.notify._core import effective_policy as effective_policy

# Errors
from imsdk_server.notify._errors import NotificationRejected as NotificationRejected
from imsdk_server.notify._errors import NotifyError as NotifyError
from imsdk_server.notify._errors import NotifyStorageUnavailable as NotifyStorageUnavailable

# Service
from imsdk_server.notify._service import FrameSink as FrameSink
from imsdk_server.notify._service import NotifyResult as NotifyResult
from imsdk_server.notify._service import NotifyService as NotifyService
from imsdk_server.notify._service import PresenceLookup as PresenceLookup

# Storage
from imsdk_server.notify._store import SCHEMA_VERSION as SCHEMA_VERSION
from imsdk_server.notify._store import InvalidNotification as InvalidNotification
from imsdk_server.notify._store import NotificationStore as NotificationStore
from imsdk_server.notify._store import NotificationStoreError as NotificationStoreError
from imsdk_server.notify._store import SchemaMismatch as SchemaMismatch
from imsdk_server.notify._store import SQLNotificationStore as SQLNotificationStore
from imsdk_server.notify._store import StoredNotification as StoredNotification
from imsdk_server.notify._store import UpsertResult as UpsertResult
from imsdk_server.notify._store import open_notification_store as open_notification_store

__all__ = [
    "SCHEMA_VERSION",
    "Action",
    "DeviceLocation",
    "FrameSink",
    "InvalidNotification",
    "LoadPending",
    "NotificationRejected",
    "NotificationStore",
    "NotificationStoreError",
    "NotifyConfig",
    "NotifyCore",
    "NotifyError",
    "NotifyResult",
    "NotifyService",
    "NotifyStorageUnavailable",
    "Outcome",
    "Policy",
    "PresenceLookup",
    "Reply",
    "Report",
    "SQLNotificationStore",
    "SchemaMismatch",
    "SendFrame",
    "StoreAck",
    "StoreNotification",
    "StoredNotification",
    "UpsertResult",
    "effective_policy",
    "open_notification_store",
]
