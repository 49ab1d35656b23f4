"""The imsdk wire codec: frames, headers, bodies and the message schema. Sans-IO: no sockets, no clocks.

A frame is a small preamble (version, codec, lengths), a header that the access layer routes on, and a body
that only the business servers decode. Two codecs carry the same logical messages: v1 (BSON header, JSON body)
and v2 (protobuf header and body); the first frame of a connection fixes its codec.

Public modules: :mod:`imsdk_proto.codes` (every number on the wire), :mod:`imsdk_proto.errors` (the typed
error tree), :mod:`imsdk_proto.messages` (the generated message classes) and :mod:`imsdk_proto.samples`
(realistic sample messages for tests and benchmarks).
"""

from imsdk_proto import codes as codes
from imsdk_proto import errors as errors
from imsdk_proto import messages as messages
from imsdk_proto._frame import DEFAULT_MAX_FRAME_SIZE as DEFAULT_MAX_FRAME_SIZE
from imsdk_proto._frame import Frame as Frame
from imsdk_proto._frame import FrameDecoder as FrameDecoder
from imsdk_proto._frame import body_class as body_class
from imsdk_proto._frame import encode_frame as encode_frame
from imsdk_proto._frame import encode_raw as encode_raw
from imsdk_proto._header import Header as Header
from imsdk_proto.codes import Biz as Biz
from imsdk_proto.codes import ChatFunc as ChatFunc
from imsdk_proto.codes import Codec as Codec
from imsdk_proto.codes import DomainFunc as DomainFunc
from imsdk_proto.codes import ErrorCode as ErrorCode
from imsdk_proto.codes import EventFunc as EventFunc
from imsdk_proto.codes import Flags as Flags
from imsdk_proto.codes import LinkFunc as LinkFunc
from imsdk_proto.codes import NotifyFunc as NotifyFunc
from imsdk_proto.codes import PresenceFunc as PresenceFunc
from imsdk_proto.codes import ProfileFunc as ProfileFunc
from imsdk_proto.codes import PushFunc as PushFunc
from imsdk_proto.codes import SyncFunc as SyncFunc
from imsdk_proto.codes import SystemFunc as SystemFunc
from imsdk_proto.codes import VoipFunc as VoipFunc
from imsdk_proto.errors import BadPreamble as BadPreamble
from imsdk_proto.errors import CodecChanged as CodecChanged
from imsdk_proto.errors import CodedError as CodedError
from imsdk_proto.errors import FrameTooLarge as FrameTooLarge
from imsdk_proto.errors import MalformedBody as MalformedBody
from imsdk_proto.errors import MalformedHeader as MalformedHeader
from imsdk_proto.errors import ProtocolError as ProtocolError
from imsdk_proto.errors import UnknownCodec as UnknownCodec
from imsdk_proto.errors import UnknownMessageCode as UnknownMessageCode
from imsdk_proto.errors import UnsupportedVersion as UnsupportedVersion

__all__ = [
    # frames
    "DEFAULT_MAX_FRAME_SIZE",
    "Frame",
    "FrameDecoder",
    "Header",
    "body_class",
    "encode_frame",
    "encode_raw",
    # codes
    "Biz",
    "ChatFunc",
    "Codec",
    "DomainFunc",
    "ErrorCode",
    "EventFunc",
    "Flags",
    "LinkFunc",
    "NotifyFunc",
    "PresenceFunc",
    "ProfileFunc",
    "PushFunc",
    "SyncFunc",
    "SystemFunc",
    "VoipFunc",
    # errors
    "CodedError",
    "BadPreamble",
    "CodecChanged",
    "FrameTooLarge",
    "MalformedBody",
    "MalformedHeader",
    "ProtocolError",
    "UnknownCodec",
    "UnknownMessageCode",
    "UnsupportedVersion",
    # modules
    "codes",
    "errors",
    "messages",
]
