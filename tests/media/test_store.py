"""The local-disk media store: content addressing, atomic commits, dedup, aborts, no path traversal."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import anyio
import pytest

from imsdk_server.media import (
    InvalidMediaId,
    LocalMediaStore,
    MediaNotFound,
    MediaStorageUnavailable,
    MediaStore,
    check_media_id,
    is_media_id,
)

pytestmark = pytest.mark.anyio


async def put(store: MediaStore, data: bytes, chunk: int = 7) -> tuple[str, bool]:
    writer = await store.begin()
    for i in range(0, len(data), chunk):
        await writer.write(data[i : i + chunk])
    assert writer.size == len(data)
    committed = await writer.commit()
    assert committed.size == len(data)
    return committed.id, committed.created


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


async def test_content_addressed_and_deduplicated(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path)
    assert isinstance(store, MediaStore)
    data = os.urandom(1000)
    media_id, created = await put(store, data)
    assert media_id == hashlib.sha256(data).hexdigest()
    assert created
    again, created = await put(store, data, chunk=999)
    assert (again, created) == (media_id, False)
    assert files(tmp_path) == [tmp_path / media_id[:2] / media_id[2:4] / media_id]
    assert await store.size(media_id) == 1000
    assert await store.head(media_id, 10) == data[:10]
    assert b"".join([c async for c in store.read(media_id, 64)]) == data
    assert await store.delete(media_id)
    assert not await store.delete(media_id)
    assert await store.size(media_id) is None


async def test_abort_leaves_nothing(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path)
    writer = await store.begin()
    await writer.write(b"half an upload")
    await writer.abort()
    await writer.abort()
    assert files(tmp_path) == []
    with pytest.raises(MediaStorageUnavailable):
        await writer.write(b"more")


async def test_unknown_blobs(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path)
    unknown = "0" * 64
    assert await store.size(unknown) is None
    with pytest.raises(MediaNotFound):
        await store.head(unknown, 4)
    with pytest.raises(MediaNotFound):
        await anext(store.read(unknown))


BAD_IDS = ["", "../" * 3 + "etc/passwd", "/etc/passwd", "A" * 64, "0" * 63, "0" * 65, "g" * 64,
           "0" * 62 + "/x", "..%2F" + "0" * 59, "0" * 63 + "\n", "0" * 63 + "\x00",
           "\\" + "0" * 63]  # fmt: skip


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_ids_are_checked_before_any_path_is_built(bad: str, tmp_path: Path) -> None:
    assert not is_media_id(bad)
    with pytest.raises(InvalidMediaId):
        check_media_id(bad)
    store = LocalMediaStore(tmp_path / "root")
    (tmp_path / "secret").write_bytes(b"do not serve")
    for call in (store.size(bad), store.head(bad, 4), store.delete(bad)):
        with pytest.raises(InvalidMediaId):
            await call
    with pytest.raises(InvalidMediaId):
        await anext(store.read(bad))


async def test_unwritable_root_is_storage_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    store = LocalMediaStore(blocker / "media")  # a directory below a regular file cannot exist
    with pytest.raises(MediaStorageUnavailable):
        await store.begin()


async def test_concurrent_uploads_of_the_same_bytes(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path)
    data = os.urandom(5000)
    results: list[tuple[str, bool]] = []

    async def one() -> None:
        results.append(await put(store, data, chunk=100))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one)
    assert {r[0] for r in results} == {hashlib.sha256(data).hexdigest()}
    assert len(files(tmp_path)) == 1  # and no temporary file is left behind
    assert b"".join([c async for c in store.read(results[0][0])]) == data
