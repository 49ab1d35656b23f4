"""Configuration of the media service: one dataclass, a docstring per field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from imsdk_server.media._validate import MediaLimits

__all__ = ["MediaConfig"]

_MIB = 1024 * 1024


@dataclass(frozen=True)
class MediaConfig:
    """Where blobs live and what the upload service accepts (see ``docs/media.md``)."""

    root: Path = field(default_factory=lambda: Path("media"))
    """The directory of the local-disk store; blobs go under ``<root>/<id[0:2]>/<id[2:4]>/<id>``, temporary
    files under ``<root>/tmp``."""

    max_image_bytes: int = 10 * _MIB
    """The largest image accepted, in bytes (enforced while the upload streams)."""

    max_voice_bytes: int = 2 * _MIB
    """The largest voice clip accepted, in bytes (enforced while the upload streams)."""

    max_image_side: int = 16384
    """The largest width or height of an image, in pixels."""

    max_image_pixels: int = 100_000_000
    """The most pixels (width × height) of an image; guards clients that decode it."""

    min_voice_ms: int = 100
    """The shortest voice clip a chat message may announce, in milliseconds."""

    max_voice_ms: int = 5 * 60 * 1000
    """The longest voice clip a chat message may announce, in milliseconds."""

    max_label_chars: int = 256
    """The longest label of a location message, in characters."""

    sniff_bytes: int = 256 * 1024
    """How many leading bytes of an upload are kept to sniff the type and read image dimensions (a JPEG's
    frame header may follow large metadata segments)."""

    chunk_size: int = 64 * 1024
    """The size of the chunks a download is streamed in."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        self.limits  # noqa: B018 - validates the limits
        if self.sniff_bytes < 64 or self.chunk_size < 1:
            raise ValueError("sniff_bytes must be at least 64 and chunk_size at least 1")

    @property
    def limits(self) -> MediaLimits:
        """The limits the validation helpers share with the upload service."""
        return MediaLimits(
            max_image_bytes=self.max_image_bytes,
            max_voice_bytes=self.max_voice_bytes,
            max_image_side=self.max_image_side,
            max_image_pixels=self.max_image_pixels,
            min_voice_ms=self.min_voice_ms,
            max_voice_ms=self.max_voice_ms,
            max_label_chars=self.max_label_chars,
        )
