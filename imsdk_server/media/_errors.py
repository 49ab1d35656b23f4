"""The media service's error tree; each error carries its wire code and the HTTP status the API answers with.

::

    MediaError                    .code: ErrorCode, .status: int
    ├── Unauthorized              TOKEN_INVALID (or the verifier's code), 401
    ├── BadRequest                MALFORMED_BODY, 400 (an unknown ``kind``)
    │   └── InvalidMediaId        MALFORMED_BODY, 400 (not 64 lowercase hex characters)
    ├── MediaNotFound             NOT_FOUND, 404
    ├── MediaTooLarge             PAYLOAD_TOO_LARGE, 413
    ├── UnsupportedMedia          MALFORMED_BODY, 415 (type not allowed, not recognised, bad image header)
    ├── MediaStorageUnavailable   STORAGE_UNAVAILABLE, 503
    └── MediaValidationError      MALFORMED_BODY, 400: the chat layer's checks of message metadata
        ├── InvalidLocation       (PAYLOAD_TOO_LARGE for an overlong label)
        ├── InvalidVoice
        ├── InvalidImage
        ├── InvalidMediaRef
        └── MediaMismatch         a reference whose metadata differs from the stored blob's
"""

from __future__ import annotations

from imsdk_proto.codes import ErrorCode
from imsdk_proto.errors import CodedError

__all__ = [
    "BadRequest",
    "InvalidImage",
    "InvalidLocation",
    "InvalidMediaId",
    "InvalidMediaRef",
    "InvalidVoice",
    "MediaError",
    "MediaMismatch",
    "MediaNotFound",
    "MediaStorageUnavailable",
    "MediaTooLarge",
    "MediaValidationError",
    "Unauthorized",
    "UnsupportedMedia",
]


class MediaError(CodedError):
    """Base of the media errors; :attr:`code` is the wire code, :attr:`status` the HTTP status,
    :attr:`message` the text shown to the caller (it never echoes the input)."""

    status: int = 500


class Unauthorized(MediaError):
    code = ErrorCode.TOKEN_INVALID
    status = 401


class BadRequest(MediaError):
    code = ErrorCode.MALFORMED_BODY
    status = 400


class InvalidMediaId(BadRequest):
    """A media id that is not exactly 64 lowercase hex characters (it never reaches the file system)."""


class MediaNotFound(MediaError):
    code = ErrorCode.NOT_FOUND
    status = 404


class MediaTooLarge(MediaError):
    code = ErrorCode.PAYLOAD_TOO_LARGE
    status = 413


class UnsupportedMedia(MediaError):
    code = ErrorCode.MALFORMED_BODY
    status = 415


class MediaStorageUnavailable(MediaError):
    code = ErrorCode.STORAGE_UNAVAILABLE
    status = 503


class MediaValidationError(MediaError):
    """Message metadata (a location, a voice duration, image dimensions, a media reference) is invalid."""

    code = ErrorCode.MALFORMED_BODY
    status = 400


class InvalidLocation(MediaValidationError):
    pass


class InvalidVoice(MediaValidationError):
    pass


class InvalidImage(MediaValidationError):
    pass


class InvalidMediaRef(MediaValidationError):
    pass


class MediaMismatch(MediaValidationError):
    """A chat message's media reference names a stored blob, but its type, size or dimensions are not the
    blob's (a client that edited the reference, or a reference to the wrong blob)."""
