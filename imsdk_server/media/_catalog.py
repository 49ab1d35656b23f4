"""Does a blob exist, and what is it? The :class:`MediaCatalog` interface the message router asks before it
stores an image or voice message, with two implementations:

* :class:`LocalMediaCatalog` reads the :class:`~imsdk_server.media.MediaStore` itself (the router shares the
  media service's process or disk);
* :class:`HttpMediaCatalog` asks the media service's ``GET /v1/media/{id}/meta`` (a router in another
  process), with a short cache in front.

Both read the metadata from the blob (:func:`describe`: its size, the type sniffed from its first bytes, an
image's dimensions from its header), exactly as the upload did, so a reference copied from an upload answer
always matches. A catalog answers ``None`` for a blob that does not exist and raises
:class:`~imsdk_server.media.MediaStorageUnavailable` when it cannot tell (disk or network failure): the
router then refuses the message with a code the client retries, and stores nothing unverified.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import httpx

from imsdk_server.media._errors import MediaNotFound, MediaStorageUnavailable
from imsdk_server.media._info import MediaInfo
from imsdk_server.media._sniff import Kind, image_dimensions, sniff
from imsdk_server.media._store import MediaStore, check_media_id
from imsdk_server.metrics import Metrics

__all__ = ["HttpMediaCatalog", "LocalMediaCatalog", "MediaCatalog", "describe"]

log = logging.getLogger("imsdk_server.media")

#: How many leading bytes :func:`describe` reads by default (``MediaConfig.sniff_bytes``'s default).
DEFAULT_SNIFF_BYTES = 256 * 1024


@runtime_checkable
class MediaCatalog(Protocol):
    """Metadata of stored blobs, by id."""

    async def lookup(self, media_id: str) -> MediaInfo | None:
        """The blob's metadata, or ``None`` if there is no such blob. Raises
        :class:`~imsdk_server.media.MediaStorageUnavailable` when the answer cannot be had (retry later) and
        :class:`~imsdk_server.media.InvalidMediaId` for an id that is not 64 lowercase hex characters."""
        ...


async def describe(
    store: MediaStore, media_id: str, sniff_bytes: int = DEFAULT_SNIFF_BYTES
) -> MediaInfo | None:
    """Read a blob's :class:`MediaInfo` from ``store`` (``None`` if it does not exist).

    ``sniff_bytes`` must be the upload service's (``MediaConfig.sniff_bytes``): a JPEG's dimensions are looked
    for within that many leading bytes, as the upload did.
    """
    size = await store.size(media_id)
    if size is None:
        return None
    try:
        head = await store.head(media_id, sniff_bytes)
    except MediaNotFound:
        return None  # removed between the two reads
    mtype = sniff(head)
    if mtype is None:
        return MediaInfo(media_id, size, "")
    width = height = 0
    if mtype.kind is Kind.IMAGE:
        dims = image_dimensions(mtype, head)
        if dims is not None:
            width, height = dims
    return MediaInfo(media_id, size, mtype.mime, width, height)


class _Cache:
    """Answers by id for ``ttl`` seconds (``negative_ttl`` for "no such blob"), at most ``max_entries``."""

    def __init__(self, ttl: float, negative_ttl: float, max_entries: int, clock: Callable[[], float]) -> None:
        if ttl < 0 or negative_ttl < 0 or max_entries < 1:
            raise ValueError("ttl and negative_ttl must not be negative, max_entries at least 1")
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, MediaInfo | None]] = OrderedDict()

    def get(self, media_id: str) -> tuple[bool, MediaInfo | None]:
        """``(True, answer)`` for a fresh entry, ``(False, None)`` otherwise."""
        entry = self._entries.get(media_id)
        if entry is None:
            return False, None
        if entry[0] <= self.clock():
            del self._entries[media_id]
            return False, None
        self._entries.move_to_end(media_id)
        return True, entry[1]

    def put(self, media_id: str, info: MediaInfo | None) -> None:
        ttl = self.ttl if info is not None else self.negative_ttl
        if ttl <= 0:
            return
        self._entries[media_id] = (self.clock() + ttl, info)
        self._entries.move_to_end(media_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class _Counted:
    def __init__(self, metrics: Metrics | None, kind: str) -> None:
        self._m = (metrics or Metrics()).child("media")
        self._kind = kind

    def count(self, result: str) -> None:
        self._m.counter("catalog_lookups_total", catalog=self._kind, result=result).inc()


class LocalMediaCatalog(_Counted):
    """A :class:`MediaCatalog` over a :class:`~imsdk_server.media.MediaStore` in this process (or on a disk
    it shares). Found blobs are remembered for ``ttl`` seconds (content never changes under an id; only a
    deletion could make an entry stale); missing ones are asked again every time (they may be uploaded any
    moment)."""

    def __init__(
        self,
        store: MediaStore,
        *,
        sniff_bytes: int = DEFAULT_SNIFF_BYTES,
        ttl: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(metrics, "local")
        self.store = store
        self.sniff_bytes = sniff_bytes
        self._cache = _Cache(ttl, 0.0, max_entries, clock)

    async def lookup(self, media_id: str) -> MediaInfo | None:
        check_media_id(media_id)
        hit, info = self._cache.get(media_id)
        if hit:
            self.count("cached")
            return info
        try:
            info = await describe(self.store, media_id, self.sniff_bytes)
        except MediaStorageUnavailable:
            self.count("error")
            raise
        self._cache.put(media_id, info)
        self.count("found" if info is not None else "missing")
        return info


class HttpMediaCatalog(_Counted):
    """A :class:`MediaCatalog` that asks the media service over HTTP: ``GET <base_url>/v1/media/{id}/meta``
    with a bearer ``token`` (a string, or a function returning a fresh one).

    Answers are cached: found blobs for ``ttl`` seconds, missing ones for ``negative_ttl`` (short: the blob
    may be uploaded any moment). A request that fails (connection refused, ``timeout`` passed, a 5xx, a
    refused token, an answer that does not parse) raises
    :class:`~imsdk_server.media.MediaStorageUnavailable` and caches nothing. ``transport`` replaces the
    network (an ASGI app in tests). Close it with :meth:`aclose` or ``async with``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | Callable[[], str] | None = None,
        timeout: float = 2.0,
        ttl: float = 60.0,
        negative_ttl: float = 1.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(metrics, "http")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._cache = _Cache(ttl, negative_ttl, max_entries, clock)
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers(self) -> dict[str, str]:
        token = self._token() if callable(self._token) else self._token
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def lookup(self, media_id: str) -> MediaInfo | None:
        check_media_id(media_id)
        hit, info = self._cache.get(media_id)
        if hit:
            self.count("cached")
            return info
        try:
            response = await self._client.get(f"/v1/media/{media_id}/meta", headers=self._headers())
        except httpx.HTTPError as exc:
            self.count("error")
            log.warning("media catalog: %s unreachable: %r", self.base_url, exc)
            raise MediaStorageUnavailable("the media service is unreachable") from exc
        if response.status_code == 404:
            self._cache.put(media_id, None)
            self.count("missing")
            return None
        if response.status_code != 200:
            self.count("error")
            log.warning("media catalog: %s answered %d", self.base_url, response.status_code)
            raise MediaStorageUnavailable(f"the media service answered {response.status_code}")
        try:
            info = _parse(media_id, response.json())
        except (ValueError, TypeError, KeyError) as exc:
            self.count("error")
            raise MediaStorageUnavailable("the media service's answer does not parse") from exc
        self._cache.put(media_id, info)
        self.count("found")
        return info


def _parse(media_id: str, body: Any) -> MediaInfo:
    if not isinstance(body, dict) or body.get("id") != media_id:
        raise ValueError("not the metadata of the blob asked for")
    values: list[int] = []
    for name in ("size", "width", "height"):
        value = body.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} is not a count")
        values.append(value)
    mime = body.get("mime", "")
    if not isinstance(mime, str):
        raise ValueError("mime is not text")
    return MediaInfo(media_id, values[0], mime, values[1], values[2])
