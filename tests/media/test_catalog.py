"""The media catalog: one conformance suite both implementations pass (the local one over the store, the HTTP
one over the real media app), their caches and failures, the ``/meta`` endpoint, and the reference check."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from imsdk_proto import messages as pb
from imsdk_proto.codes import ErrorCode
from imsdk_server.auth import KeyRing, TokenCodec, TokenVerifier
from imsdk_server.media import (
    HttpMediaCatalog,
    InvalidMediaId,
    InvalidMediaRef,
    Kind,
    LocalMediaCatalog,
    LocalMediaStore,
    MediaCatalog,
    MediaConfig,
    MediaInfo,
    MediaMismatch,
    MediaStorageUnavailable,
    TokenAuth,
    check_media_ref,
    create_media_app,
    media_id_of,
)
from imsdk_server.metrics import Metrics
from tests.media import _samples as s
from tests.media.test_http import error_name

pytestmark = pytest.mark.anyio

CONFIG = MediaConfig(sniff_bytes=1024)
MISSING = "0" * 64


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Media:
    """A media service (the real app over a local store) and a way to upload to it."""

    root: Path
    codec: TokenCodec
    app: Any
    store: LocalMediaStore
    clock: Clock = field(default_factory=Clock)

    def token(self, uid: str = "router-7") -> str:
        return self.codec.issue(uid, "server", now=time.time(), lifetime=3600)[0]

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://media")

    async def upload(self, data: bytes) -> dict[str, Any]:
        async with self.client() as client:
            r = await client.post(
                "/v1/media", content=data, headers={"Authorization": f"Bearer {self.token()}"}
            )
        assert r.status_code in (200, 201), r.text
        body: dict[str, Any] = r.json()
        return body

    def http_catalog(self, **options: Any) -> HttpMediaCatalog:
        transport = httpx.ASGITransport(app=self.app)
        return HttpMediaCatalog(
            "http://media", token=self.token, transport=transport, clock=self.clock, **options
        )


@pytest.fixture
def media(tmp_path: Path) -> Media:
    ring = KeyRing.generate(time.time())
    root = tmp_path / "media"
    config = MediaConfig(**{**CONFIG.__dict__, "root": root})
    store = LocalMediaStore(root)
    app = create_media_app(store, TokenAuth(TokenVerifier(ring)), config)
    return Media(root, TokenCodec(ring), app, store)


@pytest.fixture(params=["local", "http"])
async def catalog(request: pytest.FixtureRequest, media: Media) -> AsyncIterator[MediaCatalog]:
    if request.param == "local":
        yield LocalMediaCatalog(media.store, sniff_bytes=CONFIG.sniff_bytes, clock=media.clock)
    else:
        async with media.http_catalog() as http:
            yield http


# -- the conformance suite: both catalogs --------------------------------------------------------------------

BLOBS = [
    ("png", s.png(40, 30)),
    ("gif", s.gif(3, 2)),
    ("jpeg", s.jpeg(640, 480, exif=600)),
    ("webp", s.webp_vp8l(64, 48)),
    ("wav", s.wav(400)),
    ("amr", s.amr()),
    ("opus", s.opus()),
]


@pytest.mark.parametrize(("name", "data"), BLOBS, ids=[b[0] for b in BLOBS])
async def test_lookup_answers_what_the_upload_answered(
    catalog: MediaCatalog, media: Media, name: str, data: bytes
) -> None:
    uploaded = await media.upload(data)
    info = await catalog.lookup(uploaded["id"])
    assert info == MediaInfo(
        uploaded["id"],
        uploaded["size"],
        uploaded["mime"],
        uploaded.get("width", 0),
        uploaded.get("height", 0),
    )
    assert info.size == len(data)
    assert info.kind is Kind(uploaded["kind"])


async def test_a_blob_nobody_uploaded_is_none(catalog: MediaCatalog) -> None:
    assert await catalog.lookup(MISSING) is None


@pytest.mark.parametrize("bad", ["", "../" * 10, "A" * 64, "0" * 63, "0" * 65, "g" * 64])
async def test_an_id_that_is_not_one_is_refused_before_any_io(catalog: MediaCatalog, bad: str) -> None:
    with pytest.raises(InvalidMediaId):
        await catalog.lookup(bad)


async def test_both_catalogs_pass_as_the_protocol(media: Media) -> None:
    async with media.http_catalog() as http:
        assert isinstance(http, MediaCatalog)
    assert isinstance(LocalMediaCatalog(media.store), MediaCatalog)


# -- caches --------------------------------------------------------------------------------------------------


async def test_local_catalog_remembers_found_blobs_for_ttl_and_asks_again_for_missing_ones(
    media: Media,
) -> None:
    metrics = Metrics()
    local = LocalMediaCatalog(media.store, ttl=10.0, clock=media.clock, metrics=metrics)
    assert await local.lookup(MISSING) is None
    uploaded = await media.upload(s.png(5, 5))
    found = await local.lookup(uploaded["id"])
    assert found is not None
    # A miss is never remembered: a blob uploaded a moment later is found.
    assert await media.store.delete(uploaded["id"])
    assert await local.lookup(uploaded["id"]) == found  # remembered within ttl
    media.clock.now += 10.0
    assert await local.lookup(uploaded["id"]) is None  # asked again after it
    counts = {
        result: metrics.value("media_catalog_lookups_total", catalog="local", result=result)
        for result in ("missing", "found", "cached", "error")
    }
    assert counts == {"missing": 2.0, "found": 1.0, "cached": 1.0, "error": 0.0}


async def test_http_catalog_caches_misses_briefly_and_finds_for_ttl(media: Media) -> None:
    async with media.http_catalog(ttl=30.0, negative_ttl=1.0) as http:
        uploaded_bytes = s.gif(4, 4)
        uploaded_id = hashlib.sha256(uploaded_bytes).hexdigest()
        assert await http.lookup(uploaded_id) is None
        await media.upload(uploaded_bytes)
        assert await http.lookup(uploaded_id) is None  # the miss is remembered for negative_ttl
        media.clock.now += 1.0
        info = await http.lookup(uploaded_id)
        assert info is not None
        assert (info.width, info.height) == (4, 4)
        assert await media.store.delete(uploaded_id)
        media.clock.now += 29.0
        assert await http.lookup(uploaded_id) == info  # found blobs are remembered for ttl
        media.clock.now += 1.0
        assert await http.lookup(uploaded_id) is None


# -- failures: the catalog cannot tell -----------------------------------------------------------------------


async def test_http_catalog_to_a_closed_port_is_unavailable(media: Media) -> None:
    from tests.allinone._wire import free_port

    async with HttpMediaCatalog(f"http://127.0.0.1:{free_port()}", token="t", timeout=2.0) as http:
        with pytest.raises(MediaStorageUnavailable) as info:
            await http.lookup(MISSING)
    assert info.value.code is ErrorCode.STORAGE_UNAVAILABLE


def _answering(status: int, body: object) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return handler


BAD_ANSWERS = [
    ("refused token", 401, {"error": {"code": 200, "name": "TOKEN_INVALID", "message": "no"}}),
    ("server error", 500, {"error": {"code": 900, "name": "INTERNAL", "message": "boom"}}),
    ("unavailable", 503, {"error": {"code": 500, "name": "STORAGE_UNAVAILABLE", "message": "disk"}}),
    ("not an object", 200, ["size", 1]),
    ("another blob", 200, {"id": "1" * 64, "size": 1, "mime": "image/png"}),
    ("negative size", 200, {"id": MISSING, "size": -1, "mime": "image/png"}),
    ("size as text", 200, {"id": MISSING, "size": "12", "mime": "image/png"}),
    ("mime not text", 200, {"id": MISSING, "size": 12, "mime": 7}),
]


@pytest.mark.parametrize(("name", "status", "body"), BAD_ANSWERS, ids=[b[0] for b in BAD_ANSWERS])
async def test_http_catalog_refuses_an_answer_it_cannot_trust_and_caches_nothing(
    name: str, status: int, body: object
) -> None:
    """A stand-in for a broken or misconfigured media service: every such answer is "cannot tell"."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return _answering(status, body)(request)

    async with HttpMediaCatalog("http://media", token="t", transport=httpx.MockTransport(handler)) as http:
        for _ in range(2):
            with pytest.raises(MediaStorageUnavailable):
                await http.lookup(MISSING)
    assert len(calls) == 2  # nothing was cached
    assert calls[0].url.path == f"/v1/media/{MISSING}/meta"
    assert calls[0].headers["authorization"] == "Bearer t"


async def test_http_catalog_without_a_valid_token_is_unavailable_against_the_real_app(media: Media) -> None:
    async with HttpMediaCatalog(
        "http://media", token="not-a-token", transport=httpx.ASGITransport(app=media.app)
    ) as http:
        with pytest.raises(MediaStorageUnavailable):
            await http.lookup(MISSING)


# -- the /meta endpoint --------------------------------------------------------------------------------------


async def test_meta_endpoint_answers_like_the_upload(media: Media) -> None:
    uploaded = await media.upload(s.png(7, 9))
    voice = await media.upload(s.wav(100))
    auth = {"Authorization": f"Bearer {media.token('bob')}"}
    async with media.client() as client:
        r = await client.get(f"/v1/media/{uploaded['id']}/meta", headers=auth)
        assert r.status_code == 200
        assert r.json() == uploaded
        r = await client.get(f"/v1/media/{voice['id']}/meta", headers=auth)
        assert r.status_code == 200
        assert r.json() == voice
        assert "width" not in r.json()
        r = await client.get(f"/v1/media/{MISSING}/meta", headers=auth)
        assert (r.status_code, error_name(r)) == (404, "NOT_FOUND")
        r = await client.get("/v1/media/..%2F..%2Fetc/meta", headers=auth)
        assert r.status_code in (400, 404)
        r = await client.get(f"/v1/media/{'A' * 64}/meta", headers=auth)
        assert (r.status_code, error_name(r)) == (400, "MALFORMED_BODY")
        r = await client.get(f"/v1/media/{uploaded['id']}/meta")
        assert (r.status_code, error_name(r)) == (401, "TOKEN_INVALID")
        # the download route is unchanged beside it
        r = await client.get(f"/v1/media/{uploaded['id']}", headers=auth)
        assert r.status_code == 200
        assert len(r.content) == uploaded["size"]


# -- the reference check -------------------------------------------------------------------------------------

PNG_ID = "ab" * 32
PNG = MediaInfo(PNG_ID, 1234, "image/png", 640, 480)
WAV = MediaInfo("cd" * 32, 800, "audio/wav")


def ref(info: MediaInfo, **changes: Any) -> pb.MediaRef:
    fields: dict[str, Any] = {
        "sha256": bytes.fromhex(info.id),
        "mime": info.mime,
        "size": info.size,
        "width": info.width,
        "height": info.height,
    }
    fields.update(changes)
    return pb.MediaRef(**fields)


MISMATCHES = [
    ("mime", PNG, ref(PNG, mime="image/jpeg"), Kind.IMAGE),
    ("size", PNG, ref(PNG, size=1235), Kind.IMAGE),
    ("no size", PNG, ref(PNG, size=0), Kind.IMAGE),
    ("width", PNG, ref(PNG, width=641), Kind.IMAGE),
    ("height", PNG, ref(PNG, height=0), Kind.IMAGE),
    ("an image message naming a voice clip", WAV, ref(WAV), Kind.IMAGE),
    ("a voice message naming an image", PNG, ref(PNG), Kind.VOICE),
    ("a voice reference with dimensions", WAV, ref(WAV, width=1, height=1), Kind.VOICE),
    ("another blob's id", PNG, ref(PNG, sha256=bytes(32)), Kind.IMAGE),
    (
        "a blob of no type we accept",
        MediaInfo("ef" * 32, 10, ""),
        ref(MediaInfo("ef" * 32, 10, "")),
        Kind.VOICE,
    ),
]


@pytest.mark.parametrize(("name", "info", "reference", "kind"), MISMATCHES, ids=[m[0] for m in MISMATCHES])
def test_a_reference_that_does_not_describe_the_blob_is_a_mismatch(
    name: str, info: MediaInfo, reference: pb.MediaRef, kind: Kind
) -> None:
    with pytest.raises(MediaMismatch) as caught:
        check_media_ref(reference, info, kind)
    assert caught.value.code is ErrorCode.MALFORMED_BODY


def test_a_reference_copied_from_the_blob_matches() -> None:
    check_media_ref(ref(PNG), PNG, Kind.IMAGE)
    check_media_ref(ref(WAV), WAV, Kind.VOICE)


@pytest.mark.parametrize("sha", [b"", bytes(31), bytes(33)])
def test_media_id_of_needs_32_bytes(sha: bytes) -> None:
    with pytest.raises(InvalidMediaRef):
        media_id_of(pb.MediaRef(sha256=sha))
    assert media_id_of(pb.MediaRef(sha256=bytes(range(32)))) == bytes(range(32)).hex()
