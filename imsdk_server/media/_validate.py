"""Checks of chat-message metadata the chat layer runs before it accepts a message: pure, no I/O.

Each function returns nothing and raises a :class:`~imsdk_server.media.MediaValidationError` subclass whose
``code`` is the wire code to answer with. The limits are a :class:`MediaLimits` value, the same numbers the
upload service enforces, so a reference that passes describes something the service could have accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from imsdk_proto import messages as pb
from imsdk_proto.codes import ErrorCode
from imsdk_server.media._errors import InvalidImage, InvalidLocation, InvalidMediaRef, InvalidVoice
from imsdk_server.media._sniff import IMAGE_MIMES, VOICE_MIMES, Kind

__all__ = [
    "DEFAULT_LIMITS",
    "MediaLimits",
    "validate_image_meta",
    "validate_location",
    "validate_media_ref",
    "validate_voice_duration",
]

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """The bounds media and location metadata must respect."""

    max_image_bytes: int = 10 * _MIB
    max_voice_bytes: int = 2 * _MIB
    max_image_side: int = 16384
    max_image_pixels: int = 100_000_000
    min_voice_ms: int = 100
    max_voice_ms: int = 5 * 60 * 1000
    max_label_chars: int = 256

    def __post_init__(self) -> None:
        for name in (
            "max_image_bytes",
            "max_voice_bytes",
            "max_image_side",
            "max_image_pixels",
            "max_voice_ms",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 <= self.min_voice_ms <= self.max_voice_ms:
            raise ValueError("min_voice_ms must be in 0..max_voice_ms")
        if self.max_label_chars < 0:
            raise ValueError("max_label_chars must not be negative")

    def max_bytes(self, kind: Kind) -> int:
        """The size limit of ``kind``."""
        return self.max_image_bytes if kind is Kind.IMAGE else self.max_voice_bytes


DEFAULT_LIMITS = MediaLimits()


def _number(value: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_location(
    lat: float, lng: float, accuracy_m: float, label: str = "", limits: MediaLimits = DEFAULT_LIMITS
) -> None:
    """A location message: finite ``lat`` in [-90, 90], ``lng`` in [-180, 180], ``accuracy_m`` >= 0, and a
    label of at most ``max_label_chars`` characters."""
    if not _number(lat) or not -90.0 <= lat <= 90.0:
        raise InvalidLocation("latitude must be a number in [-90, 90]")
    if not _number(lng) or not -180.0 <= lng <= 180.0:
        raise InvalidLocation("longitude must be a number in [-180, 180]")
    if not _number(accuracy_m) or accuracy_m < 0:
        raise InvalidLocation("accuracy must be a non-negative number")
    if not isinstance(label, str):
        raise InvalidLocation("the label must be text")
    if len(label) > limits.max_label_chars:
        raise InvalidLocation(
            f"label over {limits.max_label_chars} characters", code=ErrorCode.PAYLOAD_TOO_LARGE
        )


def validate_voice_duration(duration_ms: int, limits: MediaLimits = DEFAULT_LIMITS) -> None:
    """A voice clip's announced duration lies between ``min_voice_ms`` and ``max_voice_ms``."""
    if not isinstance(duration_ms, int) or isinstance(duration_ms, bool):
        raise InvalidVoice("the duration must be a whole number of milliseconds")
    if not limits.min_voice_ms <= duration_ms <= limits.max_voice_ms:
        raise InvalidVoice(f"duration must be {limits.min_voice_ms}..{limits.max_voice_ms} ms")


def validate_image_meta(
    width: int, height: int, size: int, mime: str, limits: MediaLimits = DEFAULT_LIMITS
) -> None:
    """An image's metadata: a MIME type we accept, each side 1..``max_image_side``, at most
    ``max_image_pixels`` pixels, and 1..``max_image_bytes`` bytes."""
    if mime not in IMAGE_MIMES:
        raise InvalidImage("not an image type we accept")
    for name, side in (("width", width), ("height", height)):
        if not isinstance(side, int) or isinstance(side, bool) or not 1 <= side <= limits.max_image_side:
            raise InvalidImage(f"{name} must be 1..{limits.max_image_side} pixels")
    if width * height > limits.max_image_pixels:
        raise InvalidImage(f"more than {limits.max_image_pixels} pixels")
    if not isinstance(size, int) or not 1 <= size <= limits.max_image_bytes:
        raise InvalidImage(f"size must be 1..{limits.max_image_bytes} bytes")


def validate_media_ref(ref: pb.MediaRef, kind: Kind, limits: MediaLimits = DEFAULT_LIMITS) -> None:
    """A chat message's media reference: a 32-byte SHA-256, a MIME type of ``kind``, a size within the
    kind's limit, and for images valid dimensions."""
    if len(ref.sha256) != 32:
        raise InvalidMediaRef("a media reference needs a 32-byte sha256")
    if kind is Kind.IMAGE:
        try:
            validate_image_meta(ref.width, ref.height, ref.size, ref.mime, limits)
        except InvalidImage as exc:
            raise InvalidMediaRef(f"image reference: {exc.message}") from None
        return
    if ref.mime not in VOICE_MIMES:
        raise InvalidMediaRef("not a voice type we accept")
    if not 1 <= ref.size <= limits.max_voice_bytes:
        raise InvalidMediaRef(f"size must be 1..{limits.max_voice_bytes} bytes")
    if ref.width or ref.height:
        raise InvalidMediaRef("a voice reference has no dimensions")
