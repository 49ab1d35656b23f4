"""The imsdk client SDK: log in, choose an access point, hold the long connection, send and receive.

Runs on anyio, so an app may use it from asyncio or trio. Every error the SDK raises derives from
:class:`IMClientError` and carries the wire :class:`~imsdk_proto.codes.ErrorCode` where one applies::

    IMClientError
    ├── TransportError           no answer: refused, reset, timeout
    │   └── AllAccessPointsFailed  every access point of every round failed
    ├── BadResponse              an answer the protocol does not allow
    ├── NotLoggedIn              a call that needs a token before login
    └── ServerError              the server refused, with a code
        ├── InvalidCredentials   ├── TokenRejected     ├── RateLimited
        ├── RequestRejected      ├── Conflict          ├── NotFound
        └── ServiceUnavailable
"""

from imsdk_client._auth import AuthClient as AuthClient
from imsdk_client._auth import ProfileInfo as ProfileInfo
from imsdk_client._auth import TokenInfo as TokenInfo
from imsdk_client._core.race import Endpoint as Endpoint
from imsdk_client._drivers.race import AllAccessPointsFailed as AllAccessPointsFailed
from imsdk_client._errors import BadResponse as BadResponse
from imsdk_client._errors import Conflict as Conflict
from imsdk_client._errors import IMClientError as IMClientError
from imsdk_client._errors import InvalidCredentials as InvalidCredentials
from imsdk_client._errors import NotFound as NotFound
from imsdk_client._errors import NotLoggedIn as NotLoggedIn
from imsdk_client._errors import RateLimited as RateLimited
from imsdk_client._errors import RequestRejected as RequestRejected
from imsdk_client._errors import ServerError as ServerError
from imsdk_client._errors import ServiceUnavailable as ServiceUnavailable
from imsdk_client._errors import TokenRejected as TokenRejected
from imsdk_client._errors import TransportError as TransportError

__all__ = [
    # login and directory
    "AuthClient",
    "ProfileInfo",
    "TokenInfo",
    # access points
    "Endpoint",
    # errors
    "AllAccessPointsFailed",
    "BadResponse",
    "Conflict",
    "IMClientError",
    "InvalidCredentials",
    "NotFound",
    "NotLoggedIn",
    "RateLimited",
    "RequestRejected",
    "ServerError",
    "ServiceUnavailable",
    "TokenRejected",
    "TransportError",
]
