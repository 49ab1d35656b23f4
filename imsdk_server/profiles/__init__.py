"""Profiles and friends in real time: a profile change reaches every online friend's devices at once.

:class:`ProfilePush` listens to the auth service's events, asks presence (:class:`PresenceLookup`: a
:class:`~imsdk_server.location.PresenceClient` over a link, or :class:`LocalPresence` in process) which
friends' devices are online, and sends ``PROFILE/UPDATED`` and ``PROFILE/FRIEND_EVENT`` frames through a
:class:`Downstream` (:class:`LinkDownstream`: the links to the access servers). See ``docs/profiles.md``.
"""

from imsdk_server.profiles._push import ACCESS_ROLE as ACCESS_ROLE
from imsdk_server.profiles._push import Downstream as Downstream
from imsdk_server.profiles._push import FriendChanged as FriendChanged
from imsdk_server.profiles._push import LinkDownstream as LinkDownstream
from imsdk_server.profiles._push import LocalPresence as LocalPresence
from imsdk_server.profiles._push import PresenceLookup as PresenceLookup
from imsdk_server.profiles._push import ProfilePush as ProfilePush
from imsdk_server.profiles._push import ProfilePushConfig as ProfilePushConfig
from imsdk_server.profiles._push import friend_event_body as friend_event_body
from imsdk_server.profiles._push import profile_updated_body as profile_updated_body
from imsdk_server.profiles._push import wire_profile as wire_profile

__all__ = [
    "ACCESS_ROLE",
    "Downstream",
    "FriendChanged",
    "LinkDownstream",
    "LocalPresence",
    "PresenceLookup",
    "ProfilePush",
    "ProfilePushConfig",
    "friend_event_body",
    "profile_updated_body",
    "wire_profile",
]
