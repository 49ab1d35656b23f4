"""Pieces both codecs share: flag conversion with a cache, header validation."""

from __future__ import annotations

from imsdk_proto.codes import Flags

__all__ = ["flags_of"]

_FLAG_CACHE: dict[int, Flags] = {n: Flags(n) for n in range(64)}


def flags_of(value: int) -> Flags:
    """``Flags(value)``, cached: building an IntFlag member costs more than the rest of a header decode."""
    try:
        return _FLAG_CACHE[value]
    except KeyError:
        flags = Flags(value)
        if len(_FLAG_CACHE) < 4096:
            _FLAG_CACHE[value] = flags
        return flags
