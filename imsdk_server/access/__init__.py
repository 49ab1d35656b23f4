"""The access server: long client connections, authentication on the first frame, heartbeats, idle close,
routing of upstream frames by business and function code, downstream delivery, online/offline events and
load reports on the queue. See ``docs/access-server.md``.

The per-connection protocol is the sans-IO :class:`AccessConnection`; :class:`AccessServer` is its anyio
driver (TCP, or TLS when given a certificate).
"""

from imsdk_server.access._config import AccessConfig as AccessConfig
from imsdk_server.access._core import TRANSITIONS as TRANSITIONS
from imsdk_server.access._core import VIOLATIONS as VIOLATIONS
from imsdk_server.access._core import AccessConnection as AccessConnection
from imsdk_server.access._core import Action as Action
from imsdk_server.access._core import Authenticate as Authenticate
from imsdk_server.access._core import Closed as Closed
from imsdk_server.access._core import CoreContext as CoreContext
from imsdk_server.access._core import Forward as Forward
from imsdk_server.access._core import Input as Input
from imsdk_server.access._core import State as State
from imsdk_server.access._errors import AccessError as AccessError
from imsdk_server.access._errors import AuthenticationFailed as AuthenticationFailed
from imsdk_server.access._errors import AuthUnavailable as AuthUnavailable
from imsdk_server.access._errors import BackendNotReady as BackendNotReady
from imsdk_server.access._errors import BackendTimeout as BackendTimeout
from imsdk_server.access._errors import NoBackend as NoBackend
from imsdk_server.access._errors import RoutingError as RoutingError
from imsdk_server.access._routing import Backend as Backend
from imsdk_server.access._routing import LinkBackend as LinkBackend
from imsdk_server.access._routing import LinkRoutes as LinkRoutes
from imsdk_server.access._routing import RoutingTable as RoutingTable
from imsdk_server.access._server import AccessServer as AccessServer
from imsdk_server.access._server import EventPublisher as EventPublisher
from imsdk_server.access._verify import Identity as Identity
from imsdk_server.access._verify import LocalTokenVerifier as LocalTokenVerifier
from imsdk_server.access._verify import RemoteTokenVerifier as RemoteTokenVerifier
from imsdk_server.access._verify import SyncTokenVerifier as SyncTokenVerifier
from imsdk_server.access._verify import TokenRouter as TokenRouter
from imsdk_server.access._verify import TokenVerifier as TokenVerifier

__all__ = [
    "TRANSITIONS",
    "VIOLATIONS",
    "AccessConfig",
    "AccessConnection",
    "AccessError",
    "AccessServer",
    "Action",
    "AuthUnavailable",
    "Authenticate",
    "AuthenticationFailed",
    "Backend",
    "BackendNotReady",
    "BackendTimeout",
    "Closed",
    "CoreContext",
    "EventPublisher",
    "Forward",
    "Identity",
    "Input",
    "LinkBackend",
    "LinkRoutes",
    "LocalTokenVerifier",
    "NoBackend",
    "RemoteTokenVerifier",
    "RoutingError",
    "RoutingTable",
    "State",
    "SyncTokenVerifier",
    "TokenRouter",
    "TokenVerifier",
]
