"""The router service with a media catalog: image and voice messages are stored only when the referenced blob
is in the media store and matches its reference; a catalog that cannot tell makes the sender resend."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from imsdk_proto import messages as pb
from imsdk_proto._frame import Frame
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc, Codec, ErrorCode, Flags
from imsdk_proto.messages import SendStatus
from imsdk_server.backends.cache import MemoryCache
from imsdk_server.backends.sql import SQLiteDatabase
from imsdk_server.location import LocationService
from imsdk_server.media import HttpMediaCatalog, LocalMediaCatalog, LocalMediaStore, MediaCatalog, MediaInfo
from imsdk_server.metrics import Metrics
from imsdk_server.routing import (
    CachedMessageStore,
    LocalDownstream,
    LocationPresence,
    RouterConfig,
    RouterService,
    SQLMessageStore,
)
from tests.allinone._wire import free_port
from tests.media import _samples as samples
from tests.routing.test_service import ALICE_AT, BOB_AT, CONV, ROUTER, Inbox, ack_of, error_of

pytestmark = pytest.mark.anyio


@dataclass
class Setup:
    service: RouterService
    store: CachedMessageStore
    media: LocalMediaStore
    alice: Inbox
    metrics: Metrics

    async def upload(self, data: bytes) -> MediaInfo:
        writer = await self.media.begin()
        await writer.write(data)
        committed = await writer.commit()
        info = await LocalMediaCatalog(self.media).lookup(committed.id)
        assert info is not None
        return info

    async def stored(self) -> list[int]:
        return [r.client_msg_id for r in await self.store.pull(CONV, 1, 0, 100)]


@asynccontextmanager
async def running(tmp_path: Path, catalog: MediaCatalog | None = None) -> AsyncIterator[Setup]:
    metrics = Metrics()
    db = SQLiteDatabase(str(tmp_path / "messages.db"))
    store = CachedMessageStore(SQLMessageStore(db, metrics=metrics), MemoryCache(), metrics=metrics)
    await store.setup()
    media = LocalMediaStore(tmp_path / "media")
    location = LocationService(metrics=Metrics())
    alice = Inbox()
    service = RouterService(
        RouterConfig(server_id=ROUTER),
        store,
        LocationPresence(location),
        LocalDownstream({ALICE_AT: alice.deliver, BOB_AT: Inbox().deliver}),
        metrics=metrics,
        max_delay=0.001,
        media=catalog if catalog is not None else LocalMediaCatalog(media, metrics=metrics),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(location.run)
        await tg.start(service.run)
        try:
            yield Setup(service, store, media, alice, metrics)
        finally:
            tg.cancel_scope.cancel()
    await store.aclose()


def ref(info: MediaInfo, **changes: object) -> pb.MediaRef:
    fields: dict[str, object] = {
        "sha256": bytes.fromhex(info.id),
        "mime": info.mime,
        "size": info.size,
        "width": info.width,
        "height": info.height,
    }
    fields.update(changes)
    return pb.MediaRef(**fields)  # type: ignore[arg-type]


def frame(msg_id: int, content: pb.ChatImage | pb.ChatVoice, *, retry: bool = False) -> Frame:
    func = ChatFunc.IMAGE if isinstance(content, pb.ChatImage) else ChatFunc.VOICE
    header = Header(
        Biz.CHAT, func, seq=msg_id, msg_id=msg_id, access_id=ALICE_AT, msg_server_id=ROUTER,
        flags=Flags.RETRY if retry else Flags(0), sender_uid="alice", sender_device="phone",
        receiver_uid="bob", session=55,
    )  # fmt: skip
    return Frame(header, Codec.PROTOBUF, content.SerializeToString())


async def test_an_uploaded_blob_is_stored_a_missing_or_mismatched_one_is_refused(tmp_path: Path) -> None:
    async with running(tmp_path) as s:
        png = await s.upload(samples.png(32, 16))
        wav = await s.upload(samples.wav(800))
        missing = MediaInfo("5" * 64, png.size, png.mime, png.width, png.height)
        s.service.frame_received(frame(1, pb.ChatImage(image=ref(png), caption="ok")))
        s.service.frame_received(frame(2, pb.ChatImage(image=ref(missing))))
        s.service.frame_received(frame(3, pb.ChatImage(image=ref(png, width=33))))
        s.service.frame_received(frame(4, pb.ChatVoice(voice=ref(wav), duration_ms=100)))
        s.service.frame_received(frame(5, pb.ChatVoice(voice=ref(png), duration_ms=100)))
        answers = {f.header.msg_id: f for f in await s.alice.wait(5)}
        assert ack_of(answers[1]).status == SendStatus.SEND_STATUS_STORED
        assert error_of(answers[2]) is ErrorCode.NOT_FOUND
        assert error_of(answers[3]) is ErrorCode.MALFORMED_BODY
        assert ack_of(answers[4]).status == SendStatus.SEND_STATUS_STORED
        assert error_of(answers[5]) is ErrorCode.MALFORMED_BODY
        assert await s.stored() == [1, 4]
        assert [ack_of(answers[i]).conv_seq for i in (1, 4)] == [1, 2]


async def test_a_catalog_that_cannot_be_reached_stores_nothing_and_the_resend_succeeds(
    tmp_path: Path,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with (
        HttpMediaCatalog(closed, token="t", timeout=1.0) as unreachable,
        running(tmp_path, unreachable) as s,
    ):
        png = await s.upload(samples.png(8, 8))
        s.service.frame_received(frame(1, pb.ChatImage(image=ref(png))))
        (refusal,) = await s.alice.wait(1)
        assert error_of(refusal) is ErrorCode.STORAGE_UNAVAILABLE  # retryable: the client resends
        assert await s.stored() == []
        assert s.metrics.value("routing_media_check_errors_total") == 1
        # the media service is back (here: the router reads the store itself); the client's resend
        s.service.media = LocalMediaCatalog(s.media)
        s.service.frame_received(frame(1, pb.ChatImage(image=ref(png)), retry=True))
        (_, ack) = await s.alice.wait(2)
        assert ack_of(ack).status == SendStatus.SEND_STATUS_STORED
        assert await s.stored() == [1]


async def test_a_blob_uploaded_after_a_refusal_is_accepted_on_resend(tmp_path: Path) -> None:
    """A miss is not remembered: the client that sent before its upload finished succeeds on resend."""
    async with running(tmp_path) as s:
        data = samples.gif(5, 4)
        expected = MediaInfo(hashlib.sha256(data).hexdigest(), len(data), "image/gif", 5, 4)
        s.service.frame_received(frame(7, pb.ChatImage(image=ref(expected))))
        (refusal,) = await s.alice.wait(1)
        assert error_of(refusal) is ErrorCode.NOT_FOUND
        assert await s.upload(data) == expected
        s.service.frame_received(frame(7, pb.ChatImage(image=ref(expected)), retry=True))
        (_, ack) = await s.alice.wait(2)
        assert ack_of(ack).status == SendStatus.SEND_STATUS_STORED
        assert await s.stored() == [7]
