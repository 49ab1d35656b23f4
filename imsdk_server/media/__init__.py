"""Media for chat messages: content-addressed storage, an authenticated HTTP upload/download service, and
the validation helpers the chat layer runs on image, voice and location metadata. See ``docs/media.md``.
"""

# HTTP
from imsdk_server.media._app import MediaAuth as MediaAuth
from imsdk_server.media._app import TokenAuth as TokenAuth
from imsdk_server.media._app import create_media_app as create_media_app

# Catalog: does a blob exist, and what is it
from imsdk_server.media._catalog import HttpMediaCatalog as HttpMediaCatalog
from imsdk_server.media._catalog import LocalMediaCatalog as LocalMediaCatalog
from imsdk_server.media._catalog import MediaCatalog as MediaCatalog
from imsdk_server.media._catalog import describe as describe

# Configuration
from imsdk_server.media._config import MediaConfig as MediaConfig

# Errors
from imsdk_server.media._errors import BadRequest as BadRequest
from imsdk_server.media._errors import InvalidImage as InvalidImage
from imsdk_server.media._errors import InvalidLocation as InvalidLocation
from imsdk_server.media._errors import InvalidMediaId as InvalidMediaId
from imsdk_server.media._errors import InvalidMediaRef as InvalidMediaRef
from imsdk_server.media._errors import InvalidVoice as InvalidVoice
from imsdk_server.media._errors import MediaError as MediaError
from imsdk_server.media._errors import MediaMismatch as MediaMismatch
from imsdk_server.media._errors import MediaNotFound as MediaNotFound
from imsdk_server.media._errors import MediaStorageUnavailable as MediaStorageUnavailable
from imsdk_server.media._errors import MediaTooLarge as MediaTooLarge
from imsdk_server.media._errors import MediaValidationError as MediaValidationError
from imsdk_server.media._errors import Unauthorized as Unauthorized
from imsdk_server.media._errors import UnsupportedMedia as UnsupportedMedia

# Metadata of a stored blob
from imsdk_server.media._info import MediaInfo as MediaInfo
from imsdk_server.media._info import check_media_ref as check_media_ref
from imsdk_server.media._info import media_id_of as media_id_of

# Running the service on its own
from imsdk_server.media._server import serve_media as serve_media

# Sniffing
from imsdk_server.media._sniff import IMAGE_MIMES as IMAGE_MIMES
from imsdk_server.media._sniff import VOICE_MIMES as VOICE_MIMES
from imsdk_server.media._sniff import Kind as Kind
from imsdk_server.media._sniff import MediaType as MediaType
from imsdk_server.media._sniff import image_dimensions as image_dimensions
from imsdk_server.media._sniff import sniff as sniff

# Storage
from imsdk_server.media._store import Committed as Committed
from imsdk_server.media._store import LocalMediaStore as LocalMediaStore
from imsdk_server.media._store import MediaStore as MediaStore
from imsdk_server.media._store import MediaWriter as MediaWriter
from imsdk_server.media._store import check_media_id as check_media_id
from imsdk_server.media._store import is_media_id as is_media_id

# Validation
from imsdk_server.media._validate import DEFAULT_LIMITS as DEFAULT_LIMITS
from imsdk_server.media._validate import MediaLimits as MediaLimits
from imsdk_server.media._validate import validate_image_meta as validate_image_meta
from imsdk_server.media._validate import validate_location as validate_location
from imsdk_server.media._validate import validate_media_ref as validate_media_ref
from imsdk_server.media._validate import validate_voice_duration as validate_voice_duration

__all__ = [
    "DEFAULT_LIMITS",
    "IMAGE_MIMES",
    "VOICE_MIMES",
    "BadRequest",
    "Committed",
    "HttpMediaCatalog",
    "InvalidImage",
    "InvalidLocation",
    "InvalidMediaId",
    "InvalidMediaRef",
    "InvalidVoice",
    "Kind",
    "LocalMediaCatalog",
    "LocalMediaStore",
    "MediaAuth",
    "MediaCatalog",
    "MediaConfig",
    "MediaError",
    "MediaInfo",
    "MediaLimits",
    "MediaMismatch",
    "MediaNotFound",
    "MediaStorageUnavailable",
    "MediaStore",
    "MediaTooLarge",
    "MediaType",
    "MediaValidationError",
    "MediaWriter",
    "TokenAuth",
    "Unauthorized",
    "UnsupportedMedia",
    "check_media_id",
    "check_media_ref",
    "create_media_app",
    "describe",
    "image_dimensions",
    "is_media_id",
    "media_id_of",
    "serve_media",
    "sniff",
    "validate_image_meta",
    "validate_location",
    "validate_media_ref",
    "validate_voice_duration",
]
