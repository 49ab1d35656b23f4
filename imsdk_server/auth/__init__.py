"""The auth server: users, passwords, tokens (v1 opaque, v2 encrypted), friends and profiles over HTTP.

Access servers use :class:`TokenVerifier` (pure, no I/O) with a :class:`KeyRing` and a :class:`RevocationSet`
that a :class:`RevocationList` keeps fresh. See ``docs/auth.md``.
"""

# Service, HTTP app and runner
from imsdk_server.auth._app import create_auth_app as create_auth_app
from imsdk_server.auth._config import AuthConfig as AuthConfig

# Errors
from imsdk_server.auth._errors import AuthError as AuthError
from imsdk_server.auth._errors import BadCredentials as BadCredentials
from imsdk_server.auth._errors import BodyTooLarge as BodyTooLarge
from imsdk_server.auth._errors import FieldTooLarge as FieldTooLarge
from imsdk_server.auth._errors import InvalidRequest as InvalidRequest
from imsdk_server.auth._errors import ServiceUnavailable as ServiceUnavailable
from imsdk_server.auth._errors import Throttled as Throttled
from imsdk_server.auth._errors import TokenFault as TokenFault
from imsdk_server.auth._errors import TokenInvalid as TokenInvalid
from imsdk_server.auth._errors import TooManyFriends as TooManyFriends
from imsdk_server.auth._errors import UserExists as UserExists
from imsdk_server.auth._errors import UserNotFound as UserNotFound

# Events
from imsdk_server.auth._events import AuthEvent as AuthEvent
from imsdk_server.auth._events import AuthEvents as AuthEvents
from imsdk_server.auth._events import FriendAdded as FriendAdded
from imsdk_server.auth._events import FriendRemoved as FriendRemoved
from imsdk_server.auth._events import Profile as Profile
from imsdk_server.auth._events import ProfileChanged as ProfileChanged
from imsdk_server.auth._events import Subscriber as Subscriber
from imsdk_server.auth._events import UserLoggedIn as UserLoggedIn
from imsdk_server.auth._events import UserLoggedOut as UserLoggedOut

# Tokens
from imsdk_server.auth._opaque import OpaqueTokenStore as OpaqueTokenStore

# Passwords and throttling
from imsdk_server.auth._passwords import PasswordHasher as PasswordHasher
from imsdk_server.auth._passwords import ScryptParams as ScryptParams
from imsdk_server.auth._revocation import RevocationList as RevocationList
from imsdk_server.auth._server import serve_auth as serve_auth
from imsdk_server.auth._server import serve_auth_service as serve_auth_service
from imsdk_server.auth._service import AuthService as AuthService
from imsdk_server.auth._service import ClientInfo as ClientInfo
from imsdk_server.auth._service import IssuedToken as IssuedToken
from imsdk_server.auth._service import load_or_create_key_ring as load_or_create_key_ring

# Storage
from imsdk_server.auth._store import SCHEMA_VERSION as SCHEMA_VERSION
from imsdk_server.auth._store import SchemaTooNew as SchemaTooNew
from imsdk_server.auth._store import SQLUserStore as SQLUserStore
from imsdk_server.auth._store import User as User
from imsdk_server.auth._store import UserStore as UserStore
from imsdk_server.auth._throttle import LoginThrottle as LoginThrottle
from imsdk_server.auth._throttle import ThrottleRule as ThrottleRule
from imsdk_server.auth._tokens import Claims as Claims
from imsdk_server.auth._tokens import KeyRing as KeyRing
from imsdk_server.auth._tokens import RevocationSet as RevocationSet
from imsdk_server.auth._tokens import TokenCodec as TokenCodec
from imsdk_server.auth._tokens import TokenKey as TokenKey
from imsdk_server.auth._tokens import TokenVerifier as TokenVerifier

__all__ = [
    "SCHEMA_VERSION",
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
