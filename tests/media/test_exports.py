"""The public surface of imsdk_server.media is deliberate: this test fails when it drifts."""

from __future__ import annotations

import imsdk_server.media as media
from imsdk_proto.errors import CodedError

EXPECTED = {
    "DEFAULT_LIMITS", "IMAGE_MIMES", "VOICE_MIMES", "BadRequest", "Committed", "InvalidImage",
    "InvalidLocation", "InvalidMediaId", "InvalidMediaRef", "InvalidVoice", "Kind", "LocalMediaStore",
    "MediaAuth", "MediaConfig", "MediaError", "MediaLimits", "MediaNotFound", "MediaStorageUnavailable",
    "MediaStore", "MediaTooLarge", "MediaType", "MediaValidationError", "MediaWriter", "TokenAuth",
    "Unauthorized", "UnsupportedMedia", "check_media_id", "create_media_app", "image_dimensions",
    "is_media_id", "sniff", "validate_image_meta", "validate_location", "validate_media_ref",
    "validate_voice_duration",
    # the catalog the message router asks before it stores an image or voice message
    "HttpMediaCatalog", "LocalMediaCatalog", "MediaCatalog", "MediaInfo", "MediaMismatch", "check_media_ref",
    "describe", "media_id_of",
    # the service on its own, on the suite's one uvicorn runner
    "serve_media",
}  # fmt: skip


def test_exported_names_are_pinned() -> None:
    assert set(media.__all__) == EXPECTED
    assert len(media.__all__) == len(EXPECTED)
    public = {n for n in vars(media) if not n.startswith("_")}
    assert public == EXPECTED


def test_every_error_carries_a_code_and_a_status() -> None:
    for name in EXPECTED:
        obj = getattr(media, name)
        if isinstance(obj, type) and issubclass(obj, media.MediaError):
            assert issubclass(obj, CodedError)  # the suite's one root of coded errors
            assert 400 <= obj.status < 600
            assert obj.code.value >= 100
