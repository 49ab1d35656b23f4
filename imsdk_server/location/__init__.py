"""The location (presence) server: where every device is, and who wants to know.

A sans-IO core (:class:`PresenceCore`) decides what subscribers hear and when (delayed offline notices, quiet
quick reconnects, network-aware availability, jitter recognition); a :class:`PresenceStore` keeps a copy
other processes can read; :class:`LocationService` runs both on anyio. See ``docs/location.md``.
"""

from imsdk_server.location._client import PresenceClient as PresenceClient
from imsdk_server.location._client import PresenceNotice as PresenceNotice
from imsdk_server.location._client import PresenceRequestFailed as PresenceRequestFailed
from imsdk_server.location._client import PresenceSubscription as PresenceSubscription
from imsdk_server.location._client import PresenceTimeout as PresenceTimeout
from imsdk_server.location._client import PresenceUnavailable as PresenceUnavailable
from imsdk_server.location._config import LocationConfig as LocationConfig
from imsdk_server.location._core import ANY_NETWORK as ANY_NETWORK
from imsdk_server.location._core import CHAT as CHAT
from imsdk_server.location._core import DEVICE_TRANSITIONS as DEVICE_TRANSITIONS
from imsdk_server.location._core import NETWORK_CLASSES as NETWORK_CLASSES
from imsdk_server.location._core import SERVER_TRANSITIONS as SERVER_TRANSITIONS
from imsdk_server.location._core import VOIP as VOIP
from imsdk_server.location._core import Action as Action
from imsdk_server.location._core import BatchNotice as BatchNotice
from imsdk_server.location._core import Deliver as Deliver
from imsdk_server.location._core import DeviceKey as DeviceKey
from imsdk_server.location._core import DeviceNotice as DeviceNotice
from imsdk_server.location._core import DeviceOffline as DeviceOffline
from imsdk_server.location._core import DeviceOnline as DeviceOnline
from imsdk_server.location._core import DeviceState as DeviceState
from imsdk_server.location._core import Network as Network
from imsdk_server.location._core import NetworkClass as NetworkClass
from imsdk_server.location._core import Notice as Notice
from imsdk_server.location._core import NoticeKind as NoticeKind
from imsdk_server.location._core import Presence as Presence
from imsdk_server.location._core import PresenceCore as PresenceCore
from imsdk_server.location._core import ServerDownNotice as ServerDownNotice
from imsdk_server.location._core import ServerState as ServerState
from imsdk_server.location._core import ServerStatus as ServerStatus
from imsdk_server.location._core import StorePut as StorePut
from imsdk_server.location._core import StoreRemove as StoreRemove
from imsdk_server.location._core import Subscription as Subscription
from imsdk_server.location._core import network_class as network_class
from imsdk_server.location._errors import InvalidPresenceEvent as InvalidPresenceEvent
from imsdk_server.location._errors import LocationError as LocationError
from imsdk_server.location._errors import PresenceStateError as PresenceStateError
from imsdk_server.location._errors import PresenceStoreUnavailable as PresenceStoreUnavailable
from imsdk_server.location._errors import SubscriberOverflow as SubscriberOverflow
from imsdk_server.location._events import decode_offline as decode_offline
from imsdk_server.location._events import decode_online as decode_online
from imsdk_server.location._events import encode_offline as encode_offline
from imsdk_server.location._events import encode_online as encode_online
from imsdk_server.location._link import PresenceLinkConfig as PresenceLinkConfig
from imsdk_server.location._link import PresenceLinkServer as PresenceLinkServer
from imsdk_server.location._link import classes_from_wire as classes_from_wire
from imsdk_server.location._link import classes_to_wire as classes_to_wire
from imsdk_server.location._link import presence_from_wire as presence_from_wire
from imsdk_server.location._link import presence_to_wire as presence_to_wire
from imsdk_server.location._service import LocationService as LocationService
from imsdk_server.location._service import Subscriber as Subscriber
from imsdk_server.location._store import MemoryPresenceStore as MemoryPresenceStore
from imsdk_server.location._store import PresenceStore as PresenceStore
from imsdk_server.location._store import RedisPresenceStore as RedisPresenceStore
from imsdk_server.location._store import decode_presence as decode_presence
from imsdk_server.location._store import encode_presence as encode_presence

__all__ = [
    "ANY_NETWORK",
    "CHAT",
    "DEVICE_TRANSITIONS",
    "NETWORK_CLASSES",
    "SERVER_TRANSITIONS",
    "VOIP",
    "Action",
    "BatchNotice",
    "Deliver",
    "DeviceKey",
    "DeviceNotice",
    "DeviceOffline",
    "DeviceOnline",
    "DeviceState",
    "InvalidPresenceEvent",
    "LocationConfig",
    "LocationError",
    "LocationService",
    "MemoryPresenceStore",
    "Network",
    "NetworkClass",
    "Notice",
    "NoticeKind",
    "Presence",
    "PresenceClient",
    "PresenceCore",
    "PresenceLinkConfig",
    "PresenceLinkServer",
    "PresenceNotice",
    "PresenceRequestFailed",
    "PresenceStateError",
    "PresenceStore",
    "PresenceStoreUnavailable",
    "PresenceSubscription",
    "PresenceTimeout",
    "PresenceUnavailable",
    "RedisPresenceStore",
    "ServerDownNotice",
    "ServerState",
    "ServerStatus",
    "StorePut",
    "StoreRemove",
    "Subscriber",
    "SubscriberOverflow",
    "Subscription",
    "classes_from_wire",
    "classes_to_wire",
    "decode_offline",
    "decode_online",
    "decode_presence",
    "encode_offline",
    "encode_online",
    "encode_presence",
    "network_class",
    "presence_from_wire",
    "presence_to_wire",
]
