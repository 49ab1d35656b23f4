"""Message routing: the durable message store, its cache, group commit and the sans-IO router core.

The delivery protocol these implement is written down in ``docs/delivery.md``.
"""

from imsdk_server.routing._cache import CachedMessageStore as CachedMessageStore
from imsdk_server.routing._config import RouterConfig as RouterConfig
from imsdk_server.routing._core import Action as Action
from imsdk_server.routing._core import AppendMessage as AppendMessage
from imsdk_server.routing._core import CheckMedia as CheckMedia
from imsdk_server.routing._core import DeviceLocation as DeviceLocation
from imsdk_server.routing._core import LoadPending as LoadPending
from imsdk_server.routing._core import LoadRange as LoadRange
from imsdk_server.routing._core import QueryPresence as QueryPresence
from imsdk_server.routing._core import RouterCore as RouterCore
from imsdk_server.routing._core import SendFrame as SendFrame
from imsdk_server.routing._core import StoreAck as StoreAck
from imsdk_server.routing._core import stamp_body as stamp_body
from imsdk_server.routing._service import ACCESS_ROLE as ACCESS_ROLE
from imsdk_server.routing._service import ROUTER_ROLE as ROUTER_ROLE
from imsdk_server.routing._service import Downstream as Downstream
from imsdk_server.routing._service import DownstreamUnavailable as DownstreamUnavailable
from imsdk_server.routing._service import LinkDownstream as LinkDownstream
from imsdk_server.routing._service import LocalDownstream as LocalDownstream
from imsdk_server.routing._service import LocationPresence as LocationPresence
from imsdk_server.routing._service import NoticeStream as NoticeStream
from imsdk_server.routing._service import PresenceAnswer as PresenceAnswer
from imsdk_server.routing._service import PresenceSource as PresenceSource
from imsdk_server.routing._service import RouterServer as RouterServer
from imsdk_server.routing._service import RouterService as RouterService
from imsdk_server.routing._service import UserDirectory as UserDirectory
from imsdk_server.routing._store import AckPosition as AckPosition
from imsdk_server.routing._store import AppendResult as AppendResult
from imsdk_server.routing._store import InvalidMessage as InvalidMessage
from imsdk_server.routing._store import MessageStore as MessageStore
from imsdk_server.routing._store import MessageStoreError as MessageStoreError
from imsdk_server.routing._store import NewMessage as NewMessage
from imsdk_server.routing._store import PendingCursor as PendingCursor
from imsdk_server.routing._store import SchemaMismatch as SchemaMismatch
from imsdk_server.routing._store import StoredRecord as StoredRecord
from imsdk_server.routing._store import conversation_id as conversation_id
from imsdk_server.routing._store import conversation_members as conversation_members
from imsdk_server.routing._store_sql import SCHEMA_VERSION as SCHEMA_VERSION
from imsdk_server.routing._store_sql import SQLMessageStore as SQLMessageStore
from imsdk_server.routing._store_sql import open_message_store as open_message_store
from imsdk_server.routing._writer import GroupCommitWriter as GroupCommitWriter

__all__ = [
    "ACCESS_ROLE",
    "ROUTER_ROLE",
    "SCHEMA_VERSION",
    "Action",
    "AckPosition",
    "AppendMessage",
    "AppendResult",
    "CachedMessageStore",
    "CheckMedia",
    "DeviceLocation",
    "Downstream",
    "DownstreamUnavailable",
    "GroupCommitWriter",
    "InvalidMessage",
    "LinkDownstream",
    "LoadPending",
    "LoadRange",
    "LocalDownstream",
    "LocationPresence",
    "MessageStore",
    "MessageStoreError",
    "NewMessage",
    "NoticeStream",
    "PendingCursor",
    "PresenceAnswer",
    "PresenceSource",
    "QueryPresence",
    "RouterConfig",
    "RouterCore",
    "RouterServer",
    "RouterService",
    "SQLMessageStore",
    "SchemaMismatch",
    "SendFrame",
    "StoreAck",
    "StoredRecord",
    "UserDirectory",
    "conversation_id",
    "conversation_members",
    "open_message_store",
    "stamp_body",
]
