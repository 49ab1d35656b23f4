"""The router core's media checks: an image or voice message waits for one :class:`CheckMedia` per referenced
blob besides its presence answer, and is stored only if every blob exists and matches its reference."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from imsdk_proto import messages as pb
from imsdk_proto.codes import ChatFunc, ErrorCode, Flags
from imsdk_server.media import MediaInfo
from imsdk_server.metrics import Metrics
from imsdk_server.routing import AppendResult
from imsdk_server.routing._config import RouterConfig
from imsdk_server.routing._core import (
    Action,
    AppendMessage,
    CheckMedia,
    DeviceLocation,
    QueryPresence,
    RouterCore,
    SendFrame,
)
from tests.routing.test_core import ROUTER, T0, ack_of, chat, error_of, every, is_a, only, single

PNG = MediaInfo("01" * 32, 4321, "image/png", 640, 480)
THUMB = MediaInfo("02" * 32, 321, "image/jpeg", 64, 48)
WAV = MediaInfo("03" * 32, 16044, "audio/wav")
BOB_PHONE = DeviceLocation("bob", "phone", 9)


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


def image(info: MediaInfo = PNG, thumb: pb.MediaRef | None = None, **changes: object) -> bytes:
    message = pb.ChatImage(image=ref(info, **changes), caption="look")
    if thumb is not None:
        message.thumbnail.CopyFrom(thumb)
    return message.SerializeToString()


def voice(info: MediaInfo = WAV, **changes: object) -> bytes:
    return pb.ChatVoice(voice=ref(info, **changes), duration_ms=1500).SerializeToString()


@pytest.fixture
def core() -> RouterCore:
    return RouterCore(RouterConfig(server_id=ROUTER), metrics=Metrics(), verify_media=True)


def admitted(core: RouterCore, func: int, body: bytes, **options: object) -> tuple[int, list[str]]:
    """Feed a message; return its token and the blob ids it asked about (after checking the actions)."""
    actions = core.frame_received(*chat(func, body, **options), T0)  # type: ignore[arg-type]
    query = is_a(actions[0], QueryPresence)
    checks = [is_a(a, CheckMedia) for a in actions[1:]]
    assert all(c.token == query.token for c in checks)
    return query.token, [c.media_id for c in checks]


def test_text_and_location_ask_nothing_of_the_catalog(core: RouterCore) -> None:
    single(core.frame_received(*chat(), T0), QueryPresence)
    location = pb.ChatLocation(lat=1.0, lng=2.0).SerializeToString()
    single(core.frame_received(*chat(ChatFunc.LOCATION, location, msg_id=2, seq=2), T0), QueryPresence)


def test_without_verify_media_an_image_asks_presence_only() -> None:
    plain = RouterCore(RouterConfig(server_id=ROUTER), metrics=Metrics())
    query = single(plain.frame_received(*chat(ChatFunc.IMAGE, image()), T0), QueryPresence)
    single(plain.presence_answered(query.token, True, [], T0), AppendMessage)


@pytest.mark.parametrize(
    ("func", "body", "ids"),
    [
        (ChatFunc.IMAGE, image(), [PNG.id]),
        (ChatFunc.IMAGE, image(thumb=ref(THUMB)), [PNG.id, THUMB.id]),
        (ChatFunc.IMAGE, image(thumb=ref(PNG)), [PNG.id]),  # one look-up per blob
        (ChatFunc.IMAGE, image(thumb=pb.MediaRef()), [PNG.id]),  # an empty thumbnail names nothing
        (ChatFunc.VOICE, voice(), [WAV.id]),
    ],
    ids=["image", "image+thumbnail", "thumbnail-is-the-image", "empty-thumbnail", "voice"],
)
def test_each_referenced_blob_is_checked_once(
    core: RouterCore, func: int, body: bytes, ids: list[str]
) -> None:
    _, asked = admitted(core, func, body)
    assert asked == ids


@pytest.mark.parametrize("presence_first", [True, False], ids=["presence-first", "media-first"])
def test_a_matching_reference_is_stored_after_both_answers(core: RouterCore, presence_first: bool) -> None:
    token, _ = admitted(core, ChatFunc.IMAGE, image(thumb=ref(THUMB)))
    answers: list[Callable[[], list[Action]]] = [
        lambda: core.presence_answered(token, True, [BOB_PHONE], T0),
        lambda: core.media_checked(token, PNG.id, PNG, T0),
        lambda: core.media_checked(token, THUMB.id, THUMB, T0),
    ]
    if not presence_first:
        answers.reverse()
    for answer in answers[:-1]:
        assert answer() == []
    append = single(answers[-1](), AppendMessage)
    assert append.message.content_type == ChatFunc.IMAGE
    out = core.append_committed(append.token, AppendResult(5, 1, 99), T0)
    ack, push = every(out, SendFrame)
    assert ack_of(ack).status == pb.SendStatus.SEND_STATUS_DELIVERED
    assert pb.ChatImage.FromString(push.body).image == ref(PNG)
    assert core.inflight == 0


def test_a_blob_that_does_not_exist_is_refused_not_found_and_not_stored(core: RouterCore) -> None:
    token, _ = admitted(core, ChatFunc.VOICE, voice())
    assert core.presence_answered(token, True, [BOB_PHONE], T0) == []
    frame = single(core.media_checked(token, WAV.id, None, T0), SendFrame)
    assert error_of(frame) is ErrorCode.NOT_FOUND
    assert frame.header.code == (2, ChatFunc.SEND_ACK)
    assert (frame.header.receiver_uid, frame.header.msg_id) == ("alice", 1001)
    assert WAV.id in pb.ErrorReport.FromString(frame.body).message
    assert core.inflight == 0


MISMATCHES = [
    ("mime", ChatFunc.IMAGE, image(mime="image/gif")),
    ("size", ChatFunc.IMAGE, image(size=PNG.size + 1)),
    ("width", ChatFunc.IMAGE, image(width=641)),
    ("height", ChatFunc.IMAGE, image(height=1)),
    ("thumbnail size", ChatFunc.IMAGE, image(thumb=ref(PNG, size=1))),
    ("voice with dimensions", ChatFunc.VOICE, voice(width=3, height=3)),
    ("voice size", ChatFunc.VOICE, voice(size=1)),
]


@pytest.mark.parametrize(("name", "func", "body"), MISMATCHES, ids=[m[0] for m in MISMATCHES])
def test_a_reference_unlike_its_blob_is_refused(core: RouterCore, name: str, func: int, body: bytes) -> None:
    token, asked = admitted(core, func, body)
    core.presence_answered(token, True, [BOB_PHONE], T0)
    out = []
    for media_id in asked:
        out += core.media_checked(token, media_id, {PNG.id: PNG, WAV.id: WAV}[media_id], T0)
    frame = single(out, SendFrame)
    assert error_of(frame) is ErrorCode.MALFORMED_BODY
    assert only(out, AppendMessage) == []
    assert core.inflight == 0


def test_an_image_message_naming_a_voice_clip_is_refused(core: RouterCore) -> None:
    token, _ = admitted(core, ChatFunc.IMAGE, image(WAV))
    core.presence_answered(token, True, [], T0)
    assert error_of(single(core.media_checked(token, WAV.id, WAV, T0), SendFrame)) is ErrorCode.MALFORMED_BODY


def test_a_thumbnail_without_a_full_sha256_is_refused_at_once(core: RouterCore) -> None:
    body = image(thumb=pb.MediaRef(sha256=b"\x01" * 31, mime="image/png", size=3))
    frame = single(core.frame_received(*chat(ChatFunc.IMAGE, body), T0), SendFrame)
    assert error_of(frame) is ErrorCode.MALFORMED_BODY


def test_a_catalog_that_cannot_tell_refuses_with_its_retryable_code(core: RouterCore) -> None:
    token, _ = admitted(core, ChatFunc.IMAGE, image(thumb=ref(THUMB)))
    core.presence_answered(token, True, [BOB_PHONE], T0)
    assert core.media_check_failed(token, PNG.id, ErrorCode.STORAGE_UNAVAILABLE, T0) == []
    frame = single(core.media_checked(token, THUMB.id, THUMB, T0), SendFrame)
    assert error_of(frame) is ErrorCode.STORAGE_UNAVAILABLE
    assert core.inflight == 0


def test_an_unanswered_check_times_out_like_presence(core: RouterCore) -> None:
    token, _ = admitted(core, ChatFunc.IMAGE, image())
    core.presence_answered(token, True, [BOB_PHONE], T0)
    deadline = core.next_deadline()
    assert deadline == T0 + RouterConfig(server_id=ROUTER).presence_timeout
    assert core.handle_timer(deadline - 0.001) == []
    frame = single(core.handle_timer(deadline), SendFrame)
    assert error_of(frame) is ErrorCode.BACKEND_TIMEOUT
    assert "media" in pb.ErrorReport.FromString(frame.body).message
    assert core.media_checked(token, PNG.id, PNG, deadline + 1) == []  # too late: ignored
    assert core.inflight == 0


def test_unknown_receiver_wins_over_a_media_refusal(core: RouterCore) -> None:
    token, _ = admitted(core, ChatFunc.IMAGE, image())
    core.media_checked(token, PNG.id, None, T0)
    frame = single(core.presence_answered(token, False, [], T0), SendFrame)
    assert error_of(frame) is ErrorCode.UNKNOWN_RECEIVER


def test_stray_and_repeated_answers_are_ignored(core: RouterCore) -> None:
    token, _ = admitted(core, ChatFunc.IMAGE, image())
    assert core.media_checked(token, THUMB.id, THUMB, T0) == []  # not asked about
    assert core.media_checked(token + 100, PNG.id, PNG, T0) == []  # no such message
    assert core.media_check_failed(token + 100, PNG.id, ErrorCode.STORAGE_UNAVAILABLE, T0) == []
    assert core.media_checked(token, PNG.id, PNG, T0) == []
    assert core.media_checked(token, PNG.id, None, T0) == []  # answered already
    single(core.presence_answered(token, True, [], T0), AppendMessage)
    assert core.presence_answered(token, True, [], T0) == []


def test_sender_order_holds_across_a_pending_check(core: RouterCore) -> None:
    """A text behind an image waits for the image's check; a refused image lets it go on, in order."""
    token, _ = admitted(core, ChatFunc.IMAGE, image(), msg_id=1, seq=1)
    text = single(core.frame_received(*chat(msg_id=2, seq=2), T0), QueryPresence)
    assert core.presence_answered(text.token, True, [], T0) == []
    assert core.presence_answered(token, True, [], T0) == []
    refusal, append = core.media_checked(token, PNG.id, None, T0)
    assert error_of(is_a(refusal, SendFrame)) is ErrorCode.NOT_FOUND
    assert is_a(append, AppendMessage).message.client_msg_id == 2


def test_an_instant_image_is_checked_too(core: RouterCore) -> None:
    token, _ = admitted(core, ChatFunc.IMAGE, image(), flags=Flags.NO_STORE)
    core.presence_answered(token, True, [BOB_PHONE], T0)
    frame = single(core.media_checked(token, PNG.id, None, T0), SendFrame)
    assert error_of(frame) is ErrorCode.NOT_FOUND  # not pushed to bob
    token, _ = admitted(core, ChatFunc.IMAGE, image(), flags=Flags.NO_STORE, msg_id=2, seq=2)
    core.presence_answered(token, True, [BOB_PHONE], T0)
    push, ack = every(core.media_checked(token, PNG.id, PNG, T0), SendFrame)
    assert push.header.receiver_uid == "bob"
    assert ack_of(ack).status == pb.SendStatus.SEND_STATUS_DELIVERED


def test_refusals_are_counted_by_code(core: RouterCore) -> None:
    metrics = Metrics()
    counted = RouterCore(RouterConfig(server_id=ROUTER), metrics=metrics, verify_media=True)
    token, _ = admitted(counted, ChatFunc.VOICE, voice())
    counted.presence_answered(token, True, [], T0)
    counted.media_checked(token, WAV.id, None, T0)
    assert metrics.value("routing_errors_total", code="NOT_FOUND") == 1
