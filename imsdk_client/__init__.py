"""The imsdk client SDK: log in, choose an access point, hold the long connection, send and receive.

Runs on anyio, so an app may use it from asyncio or trio. Every error the SDK raises derives from
:class:`IMClientError` and carries the wire :class:`~imsdk_proto.codes.ErrorCode` where one applies::

    IMClientError
    ├── TransportError             no answer: refused, reset, timeout
    │   ├── ConnectTimeout         no access point answered in time
    │   └── AllAccessPointsFailed  every access point of every round failed
    ├── BadResponse                an answer the protocol does not allow
    ├── NotLoggedIn                a call that needs a token before login
    ├── ClientClosed               the client was closed while the call waited
    ├── InvalidContent             a message the SDK refuses to send (bad location, empty media…)
    ├── SendError                  the server did not accept a message
    │   ├── ReceiverOffline        instant class, receiver not online
    │   ├── UnknownReceiver        no such user
    │   └── MessageRejected        refused for another reason (code tells)
    └── ServerError                an HTTP service refused, with a code
        ├── InvalidCredentials   ├── TokenRejected     ├── RateLimited
        ├── RequestRejected      ├── Conflict          ├── NotFound
        └── ServiceUnavailable
"""

from imsdk_client._auth import AuthClient as AuthClient
from imsdk_client._auth import ProfileInfo as ProfileInfo
from imsdk_client._auth import TokenInfo as TokenInfo
from imsdk_client._client import Client as Client
from imsdk_client._client import MediaInfo as MediaInfo
from imsdk_client._client import Sending as Sending
from imsdk_client._client import check_location as check_location
from imsdk_client._core.backoff import BackoffConfig as BackoffConfig
from imsdk_client._core.events import ConnectionState as ConnectionState
from imsdk_client._core.events import Event as Event
from imsdk_client._core.events import FriendChanged as FriendChanged
from imsdk_client._core.events import MessageReceived as MessageReceived
from imsdk_client._core.events import Network as Network
from imsdk_client._core.events import NetworkChanged as NetworkChanged
from imsdk_client._core.events import NotificationReceived as NotificationReceived
from imsdk_client._core.events import PresenceChanged as PresenceChanged
from imsdk_client._core.events import ProfileUpdated as ProfileUpdated
from imsdk_client._core.events import PushReceived as PushReceived
from imsdk_client._core.events import ReceiptReceived as ReceiptReceived
from imsdk_client._core.events import ReplyReceived as ReplyReceived
from imsdk_client._core.events import RequestFailed as RequestFailed
from imsdk_client._core.events import SendAcked as SendAcked
from imsdk_client._core.events import SendFailed as SendFailed
from imsdk_client._core.events import StateChanged as StateChanged
from imsdk_client._core.heartbeat import HeartbeatConfig as HeartbeatConfig
from imsdk_client._core.race import Endpoint as Endpoint
from imsdk_client._core.reorder import ReorderConfig as ReorderConfig
from imsdk_client._core.reorder import conversation_id as conversation_id
from imsdk_client._core.session import SessionConfig as SessionConfig
from imsdk_client._drivers.race import AllAccessPointsFailed as AllAccessPointsFailed
from imsdk_client._errors import BadResponse as BadResponse
from imsdk_client._errors import ClientClosed as ClientClosed
from imsdk_client._errors import Conflict as Conflict
from imsdk_client._errors import ConnectTimeout as ConnectTimeout
from imsdk_client._errors import IMClientError as IMClientError
from imsdk_client._errors import InvalidContent as InvalidContent
from imsdk_client._errors import InvalidCredentials as InvalidCredentials
from imsdk_client._errors import MessageRejected as MessageRejected
from imsdk_client._errors import NotFound as NotFound
from imsdk_client._errors import NotLoggedIn as NotLoggedIn
from imsdk_client._errors import RateLimited as RateLimited
from imsdk_client._errors import ReceiverOffline as ReceiverOffline
from imsdk_client._errors import RequestRejected as RequestRejected
from imsdk_client._errors import SendError as SendError
from imsdk_client._errors import ServerError as ServerError
from imsdk_client._errors import ServiceUnavailable as ServiceUnavailable
from imsdk_client._errors import TokenRejected as TokenRejected
from imsdk_client._errors import TransportError as TransportError
from imsdk_client._errors import UnknownReceiver as UnknownReceiver

__all__ = [
    # the client
    "Client",
    "MediaInfo",
    "Sending",
    "check_location",
    "conversation_id",
    # configuration
    "BackoffConfig",
    "HeartbeatConfig",
    "ReorderConfig",
    "SessionConfig",
    # events
    "ConnectionState",
    "Event",
    "FriendChanged",
    "MessageReceived",
    "Network",
    "NetworkChanged",
    "NotificationReceived",
    "PresenceChanged",
    "ProfileUpdated",
    "PushReceived",
    "ReceiptReceived",
    "ReplyReceived",
    "RequestFailed",
    "SendAcked",
    "SendFailed",
    "StateChanged",
    # login and directory
    "AuthClient",
    "ProfileInfo",
    "TokenInfo",
    # access points
    "Endpoint",
    # errors
    "AllAccessPointsFailed",
    "BadResponse",
    "ClientClosed",
    "Conflict",
    "ConnectTimeout",
    "IMClientError",
    "InvalidContent",
    "InvalidCredentials",
    "MessageRejected",
    "NotFound",
    "NotLoggedIn",
    "RateLimited",
    "ReceiverOffline",
    "RequestRejected",
    "SendError",
    "ServerError",
    "ServiceUnavailable",
    "TokenRejected",
    "TransportError",
    "UnknownReceiver",
]
