"""serve_media for real: the media API on a loopback port, blobs on disk under ``config.root``, a port in use
refused before anything starts, and the port released when the service stops."""

from __future__ import annotations

import errno
import socket
import time
from pathlib import Path

import anyio
import httpx
import pytest

from imsdk_server.auth import KeyRing, TokenCodec, TokenVerifier
from imsdk_server.media import MediaConfig, TokenAuth, serve_media
from imsdk_server.metrics import Metrics
from tests.media import _samples as s

pytestmark = pytest.mark.anyio


async def test_serves_uploads_and_downloads_then_releases_the_port(tmp_path: Path) -> None:
    ring = KeyRing.generate(time.time())
    token = TokenCodec(ring).issue("alice", "phone", now=time.time(), lifetime=600)[0]
    headers = {"Authorization": f"Bearer {token}"}
    config = MediaConfig(root=tmp_path / "media")
    metrics = Metrics()
    image = s.png(64, 48)
    async with anyio.create_task_group() as tg:
        host, port = await tg.start(
            lambda task_status: serve_media(
                config, TokenAuth(TokenVerifier(ring)), metrics=metrics, task_status=task_status
            )
        )
        assert host == "127.0.0.1"
        assert port != 0
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as client:
            r = await client.post("/v1/media", content=image, headers=headers)
            assert r.status_code == 201
            media_id = r.json()["id"]
            assert (r.json()["width"], r.json()["height"]) == (64, 48)
            got = await client.get(f"/v1/media/{media_id}", headers=headers)
            assert (got.status_code, got.content) == (200, image)
            refused = await client.get(f"/v1/media/{media_id}", headers={"Authorization": "Bearer v2.bad.x"})
            assert refused.status_code == 401
        tg.cancel_scope.cancel()
    blob = config.root / media_id[0:2] / media_id[2:4] / media_id
    assert blob.read_bytes() == image
    assert metrics.value("media_bytes_stored_total") == len(image)
    with pytest.raises(OSError):  # noqa: PT011 - nothing listens any more: any connect error will do
        await anyio.connect_tcp(host, port)


async def test_a_port_in_use_is_an_oserror_naming_the_address(tmp_path: Path) -> None:
    ring = KeyRing.generate(time.time())
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        with pytest.raises(OSError) as caught:  # noqa: PT011 - errno and message checked below
            await serve_media(MediaConfig(root=tmp_path), TokenAuth(TokenVerifier(ring)), "127.0.0.1", port)
    assert caught.value.errno == errno.EADDRINUSE
    assert f"127.0.0.1:{port}" in str(caught.value)
