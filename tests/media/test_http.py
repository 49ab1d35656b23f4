"""The media HTTP API over httpx's ASGI transport (and raw ASGI calls for odd paths), then once over a real
uvicorn server on loopback. Tokens are real v2 tokens checked by the auth package's verifier."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn

from imsdk_proto.codes import ErrorCode
from imsdk_server.auth import KeyRing, TokenCodec, TokenVerifier
from imsdk_server.media import LocalMediaStore, MediaConfig, TokenAuth, create_media_app
from imsdk_server.metrics import Metrics
from tests.media import _samples as s

pytestmark = pytest.mark.anyio

SMALL = MediaConfig(max_image_bytes=4096, max_voice_bytes=2048, sniff_bytes=1024, max_image_side=5000)


@dataclass
class Env:
    root: Path
    codec: TokenCodec
    metrics: Metrics
    app: Any

    def token(self, uid: str = "alice", *, lifetime: int = 3600, now: float | None = None) -> str:
        return self.codec.issue(uid, "phone", now=now or time.time(), lifetime=lifetime)[0]

    def auth(self, uid: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(uid)}"}

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://media")

    def tmp_files(self) -> list[Path]:
        tmp = self.root / "tmp"
        return list(tmp.iterdir()) if tmp.exists() else []


def error_name(response: httpx.Response) -> str:
    """The code name of an error answer, after checking it has the suite's one error shape
    ``{"error": {"code": <wire code>, "name": <code name>, "message": <text>}}``."""
    body = response.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"code", "name", "message"}, err
    assert ErrorCode(err["code"]).name == err["name"]
    assert isinstance(err["message"], str)
    assert err["message"]
    return str(err["name"])


@pytest.fixture
def env(tmp_path: Path) -> Env:
    ring = KeyRing.generate(time.time())
    metrics = Metrics()
    root = tmp_path / "media"
    config = MediaConfig(**{**SMALL.__dict__, "root": root})
    app = create_media_app(LocalMediaStore(root), TokenAuth(TokenVerifier(ring)), config, metrics=metrics)
    return Env(root, TokenCodec(ring), metrics, app)


UPLOADS = [
    ("png", s.png(40, 30), "image", "image/png", (40, 30)),
    ("gif", s.gif(2, 2), "image", "image/gif", (2, 2)),
    ("jpeg", s.jpeg(4000, 3000), "image", "image/jpeg", (4000, 3000)),
    ("webp", s.webp_vp8(64, 48), "image", "image/webp", (64, 48)),
    ("wav", s.wav(400), "voice", "audio/wav", None),
    ("amr", s.amr(20), "voice", "audio/amr", None),
    ("opus", s.opus(), "voice", "audio/ogg", None),
    ("aac", s.aac(5), "voice", "audio/aac", None),
    ("m4a", s.m4a(), "voice", "audio/mp4", None),
]


@pytest.mark.parametrize(("name", "data", "kind", "mime", "dims"), UPLOADS, ids=[u[0] for u in UPLOADS])
async def test_upload_then_download(
    env: Env, name: str, data: bytes, kind: str, mime: str, dims: tuple[int, int] | None
) -> None:
    async with env.client() as c:
        # The client's Content-Type is ignored: the bytes decide.
        r = await c.post("/v1/media", content=data, headers={**env.auth(), "Content-Type": "text/plain"})
        assert r.status_code == 201, r.text
        body = r.json()
        digest = hashlib.sha256(data).hexdigest()
        expected: dict[str, object] = {"id": digest, "kind": kind, "mime": mime, "size": len(data)}
        if dims:
            expected |= {"width": dims[0], "height": dims[1]}
        assert body == expected
        again = await c.post("/v1/media", params={"kind": kind}, content=data, headers=env.auth("bob"))
        assert again.status_code == 200
        assert again.json() == expected
        got = await c.get(f"/v1/media/{digest}", headers=env.auth("carol"))
        assert got.status_code == 200
        assert got.content == data
        assert got.headers["content-type"].split(";")[0] == mime
        assert got.headers["content-length"] == str(len(data))
        assert got.headers["etag"] == f'"{digest}"'
    assert env.metrics.value("media_uploads_total", outcome="stored") == 1
    assert env.metrics.value("media_dedup_total") == 1
    assert env.tmp_files() == []


REFUSED_UPLOADS = [
    ("text-claiming-png", b"just some text, certainly not a picture of anything at all......", {}, 415),
    ("html", b"<html><script>alert(1)</script></html>" + bytes(64), {}, 415),
    ("empty", b"", {}, 415),
    ("png-as-voice", s.png(4, 4), {"kind": "voice"}, 415),
    ("wav-as-image", s.wav(100), {"kind": "image"}, 415),
    ("unknown-kind", s.png(4, 4), {"kind": "video"}, 400),
    ("broken-png-header", s.png(4, 4)[:20], {}, 415),
    ("image-too-wide", s.gif(6000, 10), {}, 415),
    ("image-zero-height", s.gif(10, 0), {}, 415),
    ("jpeg-frame-header-beyond-sniff", s.jpeg(10, 10, exif=2000), {}, 415),
    ("image-over-limit", s.png(4, 4) + bytes(4096), {}, 413),
    ("voice-over-limit", s.wav(1100), {}, 413),
    ("image-over-voice-limit-when-asked", s.png(40, 40) + bytes(2100), {"kind": "voice"}, 413),
]


@pytest.mark.parametrize(
    ("name", "data", "params", "status"), REFUSED_UPLOADS, ids=[u[0] for u in REFUSED_UPLOADS]
)
async def test_refused_uploads(env: Env, name: str, data: bytes, params: dict[str, str], status: int) -> None:
    async with env.client() as c:
        r = await c.post(
            "/v1/media", params=params, content=data, headers={**env.auth(), "Content-Type": "image/png"}
        )
        assert r.status_code == status, r.text
        assert (
            error_name(r) == {400: "MALFORMED_BODY", 413: "PAYLOAD_TOO_LARGE", 415: "MALFORMED_BODY"}[status]
        )
        # The service keeps serving.
        ok = await c.post("/v1/media", content=s.gif(1, 1), headers=env.auth())
        assert ok.status_code in (200, 201)
    assert [p for p in env.root.rglob("*") if p.is_file()] == [env.root / _blob_path(s.gif(1, 1))]


def _blob_path(data: bytes) -> str:
    d = hashlib.sha256(data).hexdigest()
    return f"{d[:2]}/{d[2:4]}/{d}"


async def test_size_limit_is_enforced_while_streaming(env: Env) -> None:
    """No Content-Length (chunked): the upload stops at the limit, long before the body ends."""
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield s.wav(10)[:64]  # a voice clip: the 2 KiB limit applies
        for _ in range(1000):
            sent += 1
            yield bytes(256)

    async with env.client() as c:
        r = await c.post("/v1/media", content=body(), headers=env.auth())
    assert r.status_code == 413
    assert sent < 20  # read up to the limit (2048 / 256 = 8 chunks), never the whole 256 KB
    assert env.tmp_files() == []


async def test_declared_length_over_the_limit_is_refused_before_reading(env: Env) -> None:
    reads = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal reads
        reads += 1
        yield s.png(2, 2)

    async with env.client() as c:
        r = await c.post("/v1/media", content=body(), headers={**env.auth(), "Content-Length": "5000"})
    assert r.status_code == 413
    assert reads == 0


BAD_AUTH = [
    {},
    {"Authorization": "Basic YWxpY2U6cHc="},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer v2.nokey.AAAA"},
    {"Authorization": "Bearer not-a-token"},
]


@pytest.mark.parametrize("headers", BAD_AUTH)
async def test_authentication_is_required(env: Env, headers: dict[str, str]) -> None:
    async with env.client() as c:
        up = await c.post("/v1/media", content=s.gif(1, 1), headers=headers)
        down = await c.get("/v1/media/" + "0" * 64, headers=headers)
    for r in (up, down):
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert error_name(r).startswith("TOKEN_")
    assert not env.root.exists() or [p for p in env.root.rglob("*") if p.is_file()] == []


async def test_expired_token(env: Env) -> None:
    old = env.token(now=time.time() - 7200, lifetime=60)
    async with env.client() as c:
        r = await c.get("/v1/media/" + "0" * 64, headers={"Authorization": f"Bearer {old}"})
    assert r.status_code == 401
    assert error_name(r) == "TOKEN_INVALID"  # the auth package never tells why a token was refused


async def test_unknown_and_malformed_ids(env: Env) -> None:
    async with env.client() as c:
        r = await c.get("/v1/media/" + "a" * 64, headers=env.auth())
        assert r.status_code == 404
        assert error_name(r) == "NOT_FOUND"
        bad_ids = ["A" * 64, "a" * 63, "a" * 65, "zz", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                   "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "a" * 62 + "%00a",
                   "..%5C..%5Cwindows"]  # fmt: skip
        for bad in bad_ids:
            r = await c.get(f"/v1/media/{bad}", headers=env.auth())
            assert r.status_code == 400, bad
            assert error_name(r) == "MALFORMED_BODY"


async def test_unknown_paths_and_methods_answer_the_error_shape(env: Env) -> None:
    async with env.client() as c:
        nowhere = await c.get("/v2/media", headers=env.auth())
        wrong_method = await c.delete("/v1/media/" + "a" * 64, headers=env.auth())
    assert nowhere.status_code == 404
    assert error_name(nowhere) == "NOT_FOUND"
    assert wrong_method.status_code == 405
    assert error_name(wrong_method) == "MALFORMED_BODY"


class _BrokenStore(LocalMediaStore):
    """A real store with one bug planted: every size look-up raises something no layer expects."""

    async def size(self, media_id: str) -> int | None:
        raise RuntimeError("planted bug")


async def test_an_unexpected_failure_is_a_json_500_and_the_service_goes_on(tmp_path: Path) -> None:
    ring = KeyRing.generate(time.time())
    app = create_media_app(_BrokenStore(tmp_path / "m"), TokenAuth(TokenVerifier(ring)), SMALL)
    token = TokenCodec(ring).issue("alice", "phone", now=time.time(), lifetime=60)[0]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://media") as c:
        broken = await c.get("/v1/media/" + "a" * 64, headers=headers)
        stored = await c.post("/v1/media", content=s.gif(1, 1), headers=headers)
    assert broken.status_code == 500
    assert error_name(broken) == "INTERNAL"
    assert stored.status_code == 201


async def asgi_get(app: Any, path: str, token: str) -> tuple[int, bytes]:
    """One GET with ``path`` put into the ASGI scope exactly as given (no client-side normalisation)."""
    messages: list[dict[str, Any]] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"media"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 1), "server": ("media", 80),
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


TRAVERSALS = [
    "/v1/media/../../../etc/passwd",
    "/v1/media/../secret",
    "/v1/media//etc/passwd",
    "/v1/media/./" + "a" * 62,
    "/v1/media/..\\..\\secret",
    "/v1/media/" + "a" * 64 + "/../../secret",
    "/v1/media/" + str(Path("/etc/passwd")),
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_no_path_traversal(env: Env, path: str) -> None:
    (env.root.parent / "secret").write_bytes(b"TOP SECRET")
    status, body = await asgi_get(env.app, path, env.token())
    assert status in (400, 404)
    assert b"SECRET" not in body
    assert b"root:" not in body


async def test_client_disconnect_mid_upload_leaves_nothing(env: Env) -> None:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": s.png(10, 10)[:40], "more_body": True},
        {"type": "http.disconnect"},
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/media", "raw_path": b"/v1/media", "root_path": "", "query_string": b"",
        "headers": [(b"host", b"media"), (b"authorization", f"Bearer {env.token()}".encode())],
        "client": ("127.0.0.1", 1), "server": ("media", 80),
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    await env.app(scope, receive, send)
    assert env.tmp_files() == []
    assert env.metrics.value("media_uploads_total", outcome="disconnected") == 1


async def test_disk_failure_is_503(tmp_path: Path) -> None:
    ring = KeyRing.generate(time.time())
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    app = create_media_app(LocalMediaStore(blocker / "media"), TokenAuth(TokenVerifier(ring)), SMALL)
    token = TokenCodec(ring).issue("alice", "phone", now=time.time(), lifetime=60)[0]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://media") as c:
        r = await c.post("/v1/media", content=s.gif(1, 1), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 503
    assert error_name(r) == "STORAGE_UNAVAILABLE"


async def test_real_uvicorn_server_on_loopback(env: Env) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(env.app, lifespan="off", log_level="warning", access_log=False))
    (env.root.parent / "secret").write_bytes(b"TOP SECRET")
    image = s.png(320, 200) + b""
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: server.serve(sockets=[sock]))
            with anyio.fail_after(10):
                while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
                    await anyio.sleep(0.01)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
                r = await c.post("/v1/media", content=image, headers=env.auth())
                assert r.status_code == 201
                media_id = r.json()["id"]
                assert r.json()["width"] == 320
                got = await c.get(f"/v1/media/{media_id}", headers=env.auth())
                assert got.content == image
                assert got.headers["content-type"] == "image/png"
                big = await c.post("/v1/media", content=os.urandom(50_000), headers=env.auth())
                assert big.status_code in (413, 415)
            # Raw request lines, exactly as an attacker would send them.
            for target in (
                "/v1/media/../../secret",
                "/v1/media/%2e%2e%2f%2e%2e%2fsecret",
                "/v1/media/..%2Fsecret",
            ):
                stream = await anyio.connect_tcp("127.0.0.1", port)
                async with stream:
                    request = (
                        f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {env.token()}\r\n"
                        "Connection: close\r\n\r\n"
                    )
                    await stream.send(request.encode())
                    reply = b""
                    with anyio.fail_after(10):
                        try:
                            while chunk := await stream.receive():
                                reply += chunk
                        except anyio.EndOfStream:
                            pass
                status = int(reply.split(b" ", 2)[1])
                assert status in (400, 404), (target, reply[:200])
                assert b"SECRET" not in reply
            server.should_exit = True
    finally:
        sock.close()
