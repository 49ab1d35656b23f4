"""What the media store knows about one blob (:class:`MediaInfo`), and the check that a chat message's media
reference describes that blob (:func:`check_media_ref`). Pure: no I/O, so the router's sans-IO core uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from imsdk_proto import messages as pb
from imsdk_server.media._errors import InvalidMediaRef, MediaMismatch
from imsdk_server.media._sniff import IMAGE_MIMES, VOICE_MIMES, Kind

__all__ = ["MediaInfo", "check_media_ref", "media_id_of"]


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """A stored blob's metadata, read from the blob itself (never from what a client said about it)."""

    id: str
    """The lowercase hex SHA-256 of the bytes."""
    size: int
    """Its length in bytes."""
    mime: str
    """The type sniffed from its first bytes (``""`` if none we accept: no upload stores such a blob)."""
    width: int = 0
    """Image width in pixels (0 for voice clips, or an image whose header could not be read)."""
    height: int = 0
    """Image height in pixels (0 like :attr:`width`)."""

    @property
    def kind(self) -> Kind | None:
        """:attr:`Kind.IMAGE` or :attr:`Kind.VOICE` by the MIME type; ``None`` for an unknown type."""
        if self.mime in IMAGE_MIMES:
            return Kind.IMAGE
        if self.mime in VOICE_MIMES:
            return Kind.VOICE
        return None


def media_id_of(ref: pb.MediaRef) -> str:
    """The blob id a reference names (its ``sha256`` as lowercase hex); raises :class:`InvalidMediaRef` for
    a ``sha256`` that is not 32 bytes."""
    if len(ref.sha256) != 32:
        raise InvalidMediaRef("a media reference needs a 32-byte sha256")
    return ref.sha256.hex()


def check_media_ref(ref: pb.MediaRef, info: MediaInfo, kind: Kind) -> None:
    """Raise :class:`MediaMismatch` unless ``ref`` describes the stored blob ``info`` as a ``kind``.

    The blob must be of ``kind`` (an image message cannot point at a voice clip); the reference's MIME type
    and size must be the blob's; an image reference's width and height must be the blob's, and a voice
    reference carries no dimensions. The messages never echo the reference's values.
    """
    if ref.sha256.hex() != info.id:
        raise MediaMismatch("the reference names another blob")
    if info.kind is not kind:
        raise MediaMismatch(f"the referenced media is not of kind {kind.value}")
    if ref.mime != info.mime:
        raise MediaMismatch("the reference's MIME type is not the stored media's")
    if ref.size != info.size:
        raise MediaMismatch("the reference's size is not the stored media's")
    if (ref.width, ref.height) != (info.width, info.height):
        raise MediaMismatch("the reference's dimensions are not the stored media's")
