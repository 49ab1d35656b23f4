"""Content-addressed media blobs: the :class:`MediaStore` interface and :class:`LocalMediaStore` on a disk.

A blob's id is the lowercase hex SHA-256 of its bytes. Writes stream through a :class:`MediaWriter` into a
temporary file, hashing as they go; :meth:`MediaWriter.commit` makes the blob appear under its id with one
atomic rename, so a blob either exists whole or not at all. Every id is checked against
:func:`check_media_id` before a path is built from it, which is what keeps ``../`` and friends out.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

import anyio
import anyio.to_thread

from imsdk_server.media._errors import InvalidMediaId, MediaNotFound, MediaStorageUnavailable

__all__ = ["Committed", "LocalMediaStore", "MediaStore", "MediaWriter", "check_media_id", "is_media_id"]

_ID = re.compile(r"[0-9a-f]{64}")


def is_media_id(text: str) -> bool:
    """Whether ``text`` is exactly 64 lowercase hex characters."""
    return isinstance(text, str) and _ID.fullmatch(text) is not None


def check_media_id(text: str) -> str:
    """``text`` if it is a valid media id; raises :class:`InvalidMediaId` otherwise."""
    if not is_media_id(text):
        raise InvalidMediaId("a media id is 64 lowercase hex characters")
    return text


@dataclass(frozen=True, slots=True)
class Committed:
    """A blob that :meth:`MediaWriter.commit` stored."""

    id: str
    size: int
    created: bool
    """False when a blob with the same bytes existed already (nothing new was written)."""


@runtime_checkable
class MediaWriter(Protocol):
    """One upload in progress: write chunks, then commit or abort exactly once."""

    @property
    def size(self) -> int:
        """Bytes written so far."""
        ...

    async def write(self, chunk: bytes) -> None: ...

    async def commit(self) -> Committed:
        """Store what was written under its SHA-256 (atomically); the writer is finished."""
        ...

    async def abort(self) -> None:
        """Throw what was written away (idempotent; a no-op after commit)."""
        ...


@runtime_checkable
class MediaStore(Protocol):
    """Where media blobs live, named by their SHA-256."""

    async def begin(self) -> MediaWriter:
        """Start an upload."""
        ...

    async def size(self, media_id: str) -> int | None:
        """The blob's size in bytes, or ``None`` if there is no such blob."""
        ...

    async def head(self, media_id: str, n: int) -> bytes:
        """The blob's first ``n`` bytes (raises :class:`MediaNotFound`)."""
        ...

    def read(self, media_id: str, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks (raises :class:`MediaNotFound` on the first step)."""
        ...

    async def delete(self, media_id: str) -> bool:
        """Remove a blob; False if there was none."""
        ...


class _LocalWriter:
    def __init__(self, store: LocalMediaStore, path: Path, handle: IO[bytes]) -> None:
        self._store = store
        self._path = path
        self._handle: IO[bytes] | None = handle
        self._hash = hashlib.sha256()
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    async def write(self, chunk: bytes) -> None:
        handle = self._handle
        if handle is None:
            raise MediaStorageUnavailable("the upload is finished")
        self._hash.update(chunk)
        self._size += len(chunk)
        try:
            await anyio.to_thread.run_sync(handle.write, chunk)
        except OSError as exc:
            await self.abort()
            raise MediaStorageUnavailable("the media store could not write") from exc

    async def commit(self) -> Committed:
        handle = self._handle
        if handle is None:
            raise MediaStorageUnavailable("the upload is finished")
        media_id = self._hash.hexdigest()
        try:
            created = await anyio.to_thread.run_sync(self._finish, handle, media_id)
        except OSError as exc:
            await self.abort()
            raise MediaStorageUnavailable("the media store could not commit") from exc
        self._handle = None
        return Committed(media_id, self._size, created)

    def _finish(self, handle: IO[bytes], media_id: str) -> bool:
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        final = self._store._path(media_id)
        if final.exists():
            self._path.unlink(missing_ok=True)
            return False
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path, final)  # the commit: atomic on one file system
        _fsync_dir(final.parent)
        return True

    async def abort(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return

        def discard() -> None:
            try:
                handle.close()
            finally:
                self._path.unlink(missing_ok=True)

        try:
            await anyio.to_thread.run_sync(discard)
        except OSError:
            pass  # a stray temporary file is harmless; the next start can clean tmp/


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalMediaStore:
    """A :class:`MediaStore` in a directory: ``<root>/<id[0:2]>/<id[2:4]>/<id>``, temporaries in ``tmp/``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"

    def _path(self, media_id: str) -> Path:
        check_media_id(media_id)
        return self.root / media_id[0:2] / media_id[2:4] / media_id

    async def begin(self) -> MediaWriter:
        def open_temp() -> tuple[Path, IO[bytes]]:
            self._tmp.mkdir(parents=True, exist_ok=True)
            path = self._tmp / f"upload-{secrets.token_hex(16)}"
            return path, open(path, "xb")

        try:
            path, handle = await anyio.to_thread.run_sync(open_temp)
        except OSError as exc:
            raise MediaStorageUnavailable("the media store cannot create files") from exc
        return _LocalWriter(self, path, handle)

    async def size(self, media_id: str) -> int | None:
        path = self._path(media_id)
        try:
            stat = await anyio.to_thread.run_sync(path.stat)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise MediaStorageUnavailable("the media store cannot be read") from exc
        return stat.st_size

    async def head(self, media_id: str, n: int) -> bytes:
        path = self._path(media_id)

        def read_head() -> bytes:
            with open(path, "rb") as f:
                return f.read(n)

        try:
            return await anyio.to_thread.run_sync(read_head)
        except FileNotFoundError:
            raise MediaNotFound("no such media") from None
        except OSError as exc:
            raise MediaStorageUnavailable("the media store cannot be read") from exc

    async def read(self, media_id: str, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        path = self._path(media_id)
        try:
            handle = await anyio.open_file(path, "rb")
        except FileNotFoundError:
            raise MediaNotFound("no such media") from None
        except OSError as exc:
            raise MediaStorageUnavailable("the media store cannot be read") from exc
        async with handle:
            while True:
                try:
                    chunk = await handle.read(chunk_size)
                except OSError as exc:
                    raise MediaStorageUnavailable("the media store cannot be read") from exc
                if not chunk:
                    return
                yield chunk

    async def delete(self, media_id: str) -> bool:
        path = self._path(media_id)
        try:
            await anyio.to_thread.run_sync(path.unlink)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise MediaStorageUnavailable("the media store cannot delete") from exc
        return True
