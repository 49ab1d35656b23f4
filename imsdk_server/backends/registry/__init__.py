"""Server registry and configuration parameters: one interface, an embedded and a ZooKeeper implementation.

Servers register ephemeral entries (role, id, addresses, lifecycle state), discover and watch each other,
allocate unique numeric server ids and read watched configuration parameters. See docs/registry.md.
"""

from imsdk_server.backends.registry._base import MAX_CONFIG_VALUE as MAX_CONFIG_VALUE
from imsdk_server.backends.registry._base import MAX_SERVER_ID as MAX_SERVER_ID
from imsdk_server.backends.registry._base import SERVER_STATE_TRANSITIONS as SERVER_STATE_TRANSITIONS
from imsdk_server.backends.registry._base import AlreadyRegistered as AlreadyRegistered
from imsdk_server.backends.registry._base import ConfigWatch as ConfigWatch
from imsdk_server.backends.registry._base import IllegalStateTransition as IllegalStateTransition
from imsdk_server.backends.registry._base import InvalidRegistryData as InvalidRegistryData
from imsdk_server.backends.registry._base import NotRegistered as NotRegistered
from imsdk_server.backends.registry._base import Registry as Registry
from imsdk_server.backends.registry._base import RegistryClosed as RegistryClosed
from imsdk_server.backends.registry._base import RegistryError as RegistryError
from imsdk_server.backends.registry._base import RegistryUnavailable as RegistryUnavailable
from imsdk_server.backends.registry._base import ServerInfo as ServerInfo
from imsdk_server.backends.registry._base import ServerKey as ServerKey
from imsdk_server.backends.registry._base import ServerState as ServerState
from imsdk_server.backends.registry._base import ServerWatch as ServerWatch
from imsdk_server.backends.registry._base import check_transition as check_transition
from imsdk_server.backends.registry._base import get_config_json as get_config_json
from imsdk_server.backends.registry._base import set_config_json as set_config_json
from imsdk_server.backends.registry._memory import MemoryRegistry as MemoryRegistry
from imsdk_server.backends.registry._memory import MemoryRegistryHub as MemoryRegistryHub
from imsdk_server.backends.registry._zookeeper import ZooKeeperRegistry as ZooKeeperRegistry

__all__ = [
    "MAX_CONFIG_VALUE",
    "MAX_SERVER_ID",
    "SERVER_STATE_TRANSITIONS",
    "AlreadyRegistered",
    "ConfigWatch",
    "IllegalStateTransition",
    "InvalidRegistryData",
    "MemoryRegistry",
    "MemoryRegistryHub",
    "NotRegistered",
    "Registry",
    "RegistryClosed",
    "RegistryError",
    "RegistryUnavailable",
    "ServerInfo",
    "ServerKey",
    "ServerState",
    "ServerWatch",
    "ZooKeeperRegistry",
    "check_transition",
    "get_config_json",
    "set_config_json",
]
