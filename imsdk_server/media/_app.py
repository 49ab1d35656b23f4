"""The media service's HTTP API (Starlette): authenticated, size- and type-limited upload and download.

``POST /v1/media[?kind=image|voice]`` streams the body into the store while sniffing its type and counting
its size; ``GET /v1/media/{id}`` streams a blob back; ``GET /v1/media/{id}/meta`` answers its metadata (what
:class:`~imsdk_server.media.HttpMediaCatalog` asks). Every error is one JSON body with the wire code. See
``docs/media.md``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from imsdk_proto.codes import ErrorCode
from imsdk_server.media._catalog import describe
from imsdk_server.media._config import MediaConfig
from imsdk_server.media._errors import (
    BadRequest,
    MediaError,
    MediaNotFound,
    MediaTooLarge,
    Unauthorized,
    UnsupportedMedia,
)
from imsdk_server.media._sniff import SNIFF_MIN, Kind, MediaType, image_dimensions, sniff
from imsdk_server.media._store import MediaStore, check_media_id
from imsdk_server.media._validate import validate_image_meta
from imsdk_server.metrics import Metrics

if TYPE_CHECKING:
    from imsdk_server.auth import TokenVerifier as _AuthTokenVerifier

__all__ = ["MediaAuth", "TokenAuth", "create_media_app"]

log = logging.getLogger("imsdk_server.media")


class MediaAuth(Protocol):
    """Who a bearer token speaks for."""

    async def verify(self, token: str) -> str:
        """The uid of a valid token; raises :class:`~imsdk_server.media.Unauthorized` otherwise."""
        ...


class TokenAuth:
    """The auth server's v2 tokens, verified locally (no round trip) by
    :class:`imsdk_server.auth.TokenVerifier`."""

    def __init__(self, verifier: _AuthTokenVerifier, *, clock: Callable[[], float] = time.time) -> None:
        self._verifier = verifier
        self._clock = clock

    async def verify(self, token: str) -> str:
        from imsdk_server.auth import AuthError

        try:
            return self._verifier.verify(token, self._clock()).uid
        except AuthError as exc:
            raise Unauthorized("token refused", code=exc.code) from None


class _Api:
    def __init__(self, store: MediaStore, auth: MediaAuth, config: MediaConfig, metrics: Metrics) -> None:
        self.store = store
        self.auth = auth
        self.config = config
        self.limits = config.limits
        self.m = metrics.child("media")
        self.m_bytes = self.m.counter("bytes_stored_total")
        self.m_dedup = self.m.counter("dedup_total")
        self.m_latency = self.m.histogram("upload_seconds")

    def error(self, exc: MediaError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return self.error_response(exc.code, exc.message, exc.status, headers)

    def error_response(
        self, code: ErrorCode, message: str, status: int, headers: dict[str, str] | None = None
    ) -> JSONResponse:
        """The suite's one error body: ``{"error": {"code": <wire code>, "name": <name>, "message": …}}``."""
        self.m.counter("errors_total", code=code.name).inc()
        body = {"error": {"code": int(code), "name": code.name, "message": message}}
        return JSONResponse(body, status_code=status, headers=headers)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Unknown paths and methods answer in the same shape as every other error."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return self.error_response(ErrorCode.NOT_FOUND, "no such endpoint", 404)
        if status == 405:
            return self.error_response(ErrorCode.MALFORMED_BODY, "method not allowed", 405)
        return self.error_response(ErrorCode.MALFORMED_BODY, "bad request", status)

    async def uid(self, request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("a bearer token is required")
        return await self.auth.verify(token.strip())

    # -- upload ----------------------------------------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            await self.uid(request)
            response = await self._upload(request)
        except MediaError as exc:
            self.m.counter("uploads_total", outcome=exc.code.name.lower()).inc()
            return self.error(exc)
        except ClientDisconnect:
            self.m.counter("uploads_total", outcome="disconnected").inc()
            return Response(status_code=400)
        except Exception:
            log.exception("media upload failed unexpectedly")
            self.m.counter("uploads_total", outcome="internal").inc()
            return self.error_response(ErrorCode.INTERNAL, "internal error", 500)
        self.m_latency.observe(time.perf_counter() - started)
        return response

    async def _upload(self, request: Request) -> Response:
        wanted: Kind | None = None
        if "kind" in request.query_params:
            try:
                wanted = Kind(request.query_params["kind"])
            except ValueError:
                raise BadRequest("kind must be image or voice") from None
        limit = self.limits.max_bytes(wanted) if wanted else max(self.limits.max_bytes(k) for k in Kind)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise MediaTooLarge(f"over {limit} bytes")
        writer = await self.store.begin()
        try:
            head = bytearray()
            mtype: MediaType | None = None
            size = 0
            async for chunk in request.stream():
                if not chunk:
                    continue
                size += len(chunk)
                if len(head) < self.config.sniff_bytes:
                    head += chunk[: self.config.sniff_bytes - len(head)]
                if mtype is None and len(head) >= SNIFF_MIN:
                    mtype = self._accept(bytes(head), wanted)
                    limit = self.limits.max_bytes(mtype.kind)
                if size > limit:
                    raise MediaTooLarge(f"over {limit} bytes")
                await writer.write(chunk)
            if size == 0:
                raise UnsupportedMedia("the upload is empty")
            if mtype is None:
                mtype = self._accept(bytes(head), wanted)
                if size > self.limits.max_bytes(mtype.kind):
                    raise MediaTooLarge(f"over {self.limits.max_bytes(mtype.kind)} bytes")
            result: dict[str, object] = {"kind": mtype.kind.value, "mime": mtype.mime, "size": size}
            if mtype.kind is Kind.IMAGE:
                dims = image_dimensions(mtype, bytes(head))
                if dims is None:
                    raise UnsupportedMedia("the image header is broken or its dimensions are out of reach")
                try:
                    validate_image_meta(dims[0], dims[1], size, mtype.mime, self.limits)
                except MediaError as exc:
                    raise UnsupportedMedia(exc.message) from None
                result["width"], result["height"] = dims
            committed = await writer.commit()
        except BaseException:
            await writer.abort()
            raise
        if committed.created:
            self.m_bytes.inc(committed.size)
        else:
            self.m_dedup.inc()
        self.m.counter("uploads_total", outcome="stored" if committed.created else "existing").inc()
        return JSONResponse({"id": committed.id, **result}, status_code=201 if committed.created else 200)

    def _accept(self, head: bytes, wanted: Kind | None) -> MediaType:
        mtype = sniff(head)
        if mtype is None:
            raise UnsupportedMedia(
                "not a type we accept (images: JPEG, PNG, GIF, WebP; voice: AMR, Opus, AAC, M4A, WAV)"
            )
        if wanted is not None and mtype.kind is not wanted:
            raise UnsupportedMedia(f"the content is not of kind {wanted.value}")
        return mtype

    # -- download --------------------------------------------------------------------------------------------

    async def download(self, request: Request) -> Response:
        try:
            await self.uid(request)
            media_id = check_media_id(request.path_params["media_id"])
            size = await self.store.size(media_id)
            if size is None:
                raise MediaNotFound("no such media")
            head = await self.store.head(media_id, SNIFF_MIN)
            mtype = sniff(head)
            chunks = self.store.read(media_id, self.config.chunk_size)
            first = await anext(chunks, b"")  # opens the file now: a vanished blob is still a clean 404
        except MediaError as exc:
            self.m.counter("downloads_total", status=exc.status).inc()
            return self.error(exc)
        except Exception:
            log.exception("media download failed unexpectedly")
            self.m.counter("downloads_total", status=500).inc()
            return self.error_response(ErrorCode.INTERNAL, "internal error", 500)
        self.m.counter("downloads_total", status=200).inc()
        headers = {
            "Content-Length": str(size),
            "ETag": f'"{media_id}"',
            "Cache-Control": "private, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        }
        return StreamingResponse(
            _prepend(first, chunks),
            media_type=mtype.mime if mtype else "application/octet-stream",
            headers=headers,
        )

    # -- metadata --------------------------------------------------------------------------------------------

    async def meta(self, request: Request) -> Response:
        """The blob's metadata as the upload answered it: ``id``, ``kind``, ``mime``, ``size`` and, for
        images, ``width`` and ``height``; read from the blob, so it never changes under an id."""
        try:
            await self.uid(request)
            media_id = check_media_id(request.path_params["media_id"])
            info = await describe(self.store, media_id, self.config.sniff_bytes)
            if info is None:
                raise MediaNotFound("no such media")
        except MediaError as exc:
            self.m.counter("meta_total", status=exc.status).inc()
            return self.error(exc)
        except Exception:
            log.exception("media metadata failed unexpectedly")
            self.m.counter("meta_total", status=500).inc()
            return self.error_response(ErrorCode.INTERNAL, "internal error", 500)
        self.m.counter("meta_total", status=200).inc()
        body: dict[str, object] = {
            "id": info.id,
            "kind": info.kind.value if info.kind is not None else "",
            "mime": info.mime,
            "size": info.size,
        }
        if info.kind is Kind.IMAGE:
            body["width"], body["height"] = info.width, info.height
        return JSONResponse(body, headers={"Cache-Control": "private, max-age=31536000, immutable"})


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


def create_media_app(
    store: MediaStore,
    auth: MediaAuth,
    config: MediaConfig | None = None,
    *,
    metrics: Metrics | None = None,
) -> Starlette:
    """The media service as an ASGI app over ``store``, with ``auth`` checking bearer tokens."""
    api = _Api(store, auth, config or MediaConfig(), metrics or Metrics())
    routes = [
        Route("/v1/media", api.upload, methods=["POST"]),
        Route("/v1/media/{media_id}/meta", api.meta, methods=["GET"]),
        Route("/v1/media/{media_id:path}", api.download, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: api.http_error})
