"""The notification core, table-driven: online/offline × discard/store × store answers, merge ordering, login
delivery, acks and bad frames. The test is the driver: it answers the core's store actions itself."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from imsdk_proto import messages as pb
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc, ErrorCode, Flags, NotifyFunc
from imsdk_proto.messages import StorePolicy
from imsdk_server.metrics import Metrics
from imsdk_server.notify import (
    Action,
    DeviceLocation,
    LoadPending,
    NotificationRejected,
    NotifyConfig,
    NotifyCore,
    Outcome,
    Policy,
    Reply,
    Report,
    SendFrame,
    StoreAck,
    StoredNotification,
    StoreNotification,
    UpsertResult,
)

NOW = 1_700_000_000.0
CONFIG = NotifyConfig(
    node_id=7,
    policies={"friend_request": Policy.KEEP_LATEST, "typing": Policy.DROP},
    default_policy=Policy.DROP,
    login_page=3,
)
PHONE = DeviceLocation("alice", "phone", 11)
PAD = DeviceLocation("alice", "pad", 12)


def pushes(actions: list[Action]) -> list[SendFrame]:
    return [a for a in actions if isinstance(a, SendFrame)]


def reports(actions: list[Action]) -> list[Report]:
    return [a for a in actions if isinstance(a, Report)]


def pushed_to(actions: list[Action]) -> set[tuple[str, str, int]]:
    return {(f.header.receiver_uid, f.header.receiver_device, f.access_id) for f in pushes(actions)}


@dataclass(frozen=True)
class Case:
    name: str
    type: str
    devices: tuple[DeviceLocation, ...]
    store_answer: UpsertResult | None  # None: the core must not ask the store
    outcome: Outcome
    pushed: frozenset[tuple[str, str, int]]
    store_field: int = StorePolicy.STORE_POLICY_UNSPECIFIED


BOTH = frozenset({("alice", "phone", 11), ("alice", "pad", 12)})
CASES = [
    Case("online-drop", "typing", (PHONE, PAD), None, Outcome.DELIVERED, BOTH),
    Case("offline-drop", "typing", (), None, Outcome.DROPPED, frozenset()),
    Case("default-policy-drop", "unlisted", (), None, Outcome.DROPPED, frozenset()),
    Case("online-store", "friend_request", (PHONE, PAD), UpsertResult.STORED, Outcome.PUSHED, BOTH),
    Case("offline-store", "friend_request", (), UpsertResult.STORED, Outcome.STORED, frozenset()),
    Case(
        "online-duplicate", "friend_request", (PHONE,), UpsertResult.DUPLICATE, Outcome.DUPLICATE, frozenset()
    ),
    Case(
        "online-superseded",
        "friend_request",
        (PHONE,),
        UpsertResult.SUPERSEDED,
        Outcome.SUPERSEDED,
        frozenset(),
    ),
    Case(
        "explicit-keep-overrides-type",
        "typing",
        (),
        UpsertResult.STORED,
        Outcome.STORED,
        frozenset(),
        StorePolicy.STORE_POLICY_KEEP_LATEST,
    ),
    Case(
        "explicit-drop-overrides-type",
        "friend_request",
        (),
        None,
        Outcome.DROPPED,
        frozenset(),
        StorePolicy.STORE_POLICY_DROP,
    ),
    Case(
        "other-users-devices-ignored",
        "typing",
        (DeviceLocation("bob", "phone", 13),),
        None,
        Outcome.DROPPED,
        frozenset(),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_submission_table(case: Case) -> None:
    core = NotifyCore(CONFIG)
    note = pb.Notification(type=case.type, payload=b"p", store=case.store_field)  # type: ignore[arg-type]
    token, actions = core.submit("alice", note, case.devices, NOW)
    if case.store_answer is None:
        assert not [a for a in actions if isinstance(a, StoreNotification)]
    else:
        # Store first: nothing is pushed or answered before the commit.
        assert len(actions) == 1
        (store,) = actions
        assert isinstance(store, StoreNotification)
        assert store.token == token
        assert store.notification.uid == "alice"
        assert store.notification.type == case.type
        assert store.notification.payload == b"p"
        assert core.inflight == 1
        actions = core.stored(token, case.store_answer, NOW)
        assert core.inflight == 0
    assert pushed_to(actions) == case.pushed
    (report,) = reports(actions)
    assert report.token == token
    assert report.outcome is case.outcome
    assert report.error is None
    for frame in pushes(actions):
        assert frame.header.biz == Biz.NOTIFY
        assert frame.header.func == NotifyFunc.NOTIFY
        assert frame.header.msg_id == report.notify_id
        body = pb.Notification.FromString(frame.body)
        assert body.notify_id == report.notify_id
        assert body.created_at_ms == int(NOW * 1000)
        assert body.type == case.type
        expected = (
            StorePolicy.STORE_POLICY_KEEP_LATEST if case.store_answer else StorePolicy.STORE_POLICY_DROP
        )
        assert body.store == expected


def test_store_failure_pushes_nothing_and_reports_the_code() -> None:
    core = NotifyCore(CONFIG)
    token, actions = core.submit("alice", pb.Notification(type="friend_request"), [PHONE], NOW)
    assert isinstance(actions[0], StoreNotification)
    answer = core.store_failed(token, ErrorCode.STORAGE_UNAVAILABLE, NOW)
    assert pushes(answer) == []
    (report,) = reports(answer)
    assert report.outcome is None
    assert report.error is ErrorCode.STORAGE_UNAVAILABLE
    # Late or repeated answers for a finished token are ignored.
    assert core.stored(token, UpsertResult.STORED, NOW) == []
    assert core.store_failed(token, ErrorCode.STORAGE_UNAVAILABLE, NOW) == []


def test_online_notice_counts_without_a_presence_answer() -> None:
    core = NotifyCore(CONFIG)
    core.device_online("alice", "pad", 12, NOW)
    _, actions = core.submit("alice", pb.Notification(type="typing"), [], NOW)
    assert pushed_to(actions) == {("alice", "pad", 12)}
    # A device that came online while the store was committing gets the push too.
    token, _ = core.submit("alice", pb.Notification(type="friend_request"), [], NOW)
    core.device_online("alice", "phone", 11, NOW)
    assert pushed_to(core.stored(token, UpsertResult.STORED, NOW)) == {
        ("alice", "pad", 12),
        ("alice", "phone", 11),
    }
    core.device_offline("alice", "pad", NOW)
    core.device_offline("alice", "phone", NOW)
    _, actions = core.submit("alice", pb.Notification(type="typing"), [], NOW)
    assert reports(actions)[0].outcome is Outcome.DROPPED


def test_assigned_ids_grow_and_carry_the_node() -> None:
    core = NotifyCore(CONFIG)
    ids = [core.next_notify_id(NOW) for _ in range(5)]
    ids.append(core.next_notify_id(NOW - 100))  # the clock stepped back
    ids.append(core.next_notify_id(NOW + 1))
    assert ids == sorted(set(ids))
    assert all(i & 0xFF == 7 for i in ids)
    assert ids[0] >> 20 == int(NOW * 1000)
    assert ids[-1] >> 20 == int((NOW + 1) * 1000)
    assert all(i < 2**63 for i in ids)


def test_given_ids_and_times_are_kept() -> None:
    core = NotifyCore(CONFIG)
    note = pb.Notification(type="friend_request", notify_id=42, created_at_ms=5, merge_key="g")
    _, actions = core.submit("alice", note, [], NOW)
    (store,) = actions
    assert isinstance(store, StoreNotification)
    assert store.notification == StoredNotification("alice", "friend_request", "g", 42, b"", 5)


def _model_store_run(versions: list[int], online: bool) -> tuple[dict[str, int], list[int]]:
    """Drive the core through a series of same-key submissions, answering like a versioned store."""
    core = NotifyCore(CONFIG)
    kept: dict[str, int] = {}
    pushed: list[int] = []
    for v in versions:
        token, actions = core.submit(
            "alice", pb.Notification(type="friend_request", notify_id=v), [PHONE] if online else [], NOW
        )
        (store,) = actions
        assert isinstance(store, StoreNotification)
        prior = kept.get("friend_request")
        if prior is None or v > prior:
            kept["friend_request"] = v
            result = UpsertResult.STORED
        else:
            result = UpsertResult.DUPLICATE if v == prior else UpsertResult.SUPERSEDED
        pushed += [f.header.msg_id for f in pushes(core.stored(token, result, NOW))]
    return kept, pushed


@pytest.mark.parametrize(
    ("versions", "kept", "pushed_online"),
    [
        ([1, 2, 3], 3, [1, 2, 3]),
        ([3, 2, 1], 3, [3]),
        ([2, 5, 4, 5, 6], 6, [2, 5, 6]),
        ([7, 7, 7], 7, [7]),
    ],
)
def test_merge_ordering(versions: list[int], kept: int, pushed_online: list[int]) -> None:
    """Only the latest version is kept; a late older one is never pushed (online) nor kept (offline)."""
    store, pushed = _model_store_run(versions, online=True)
    assert store == {"friend_request": kept}
    assert pushed == pushed_online
    store, pushed = _model_store_run(versions, online=False)
    assert store == {"friend_request": kept}
    assert pushed == []


def _stored(notify_id: int, kind: str = "t", *, acked: int = 0, uid: str = "alice") -> StoredNotification:
    return StoredNotification(uid, kind, "", notify_id, f"n{notify_id}".encode(), 1000 + notify_id, acked)


def test_login_delivery_pages_in_order_to_the_device() -> None:
    core = NotifyCore(CONFIG)
    (load,) = core.device_online("alice", "phone", 11, NOW)
    assert load == LoadPending(load.token, "alice", 0, 3)  # type: ignore[union-attr]
    assert isinstance(load, LoadPending)
    first = core.loaded(load.token, [_stored(1, "a"), _stored(2, "b"), _stored(3, "c", acked=9)], NOW)
    assert [f.header.msg_id for f in pushes(first)] == [1, 2]  # a tombstone is never pushed
    assert pushed_to(first) == {("alice", "phone", 11)}
    body = pb.Notification.FromString(pushes(first)[0].body)
    assert (body.type, body.payload, body.created_at_ms) == ("a", b"n1", 1001)
    assert body.store == StorePolicy.STORE_POLICY_KEEP_LATEST
    (nxt,) = [a for a in first if isinstance(a, LoadPending)]
    assert nxt.after_id == 3
    last = core.loaded(nxt.token, [_stored(4, "d"), _stored(6, uid="mallory")], NOW)
    assert [f.header.msg_id for f in pushes(last)] == [4]  # nor another user's row
    assert [a for a in last if isinstance(a, LoadPending)] == []


def test_offline_or_relogin_cancels_a_load() -> None:
    core = NotifyCore(CONFIG)
    (load,) = core.device_online("alice", "phone", 11, NOW)
    assert isinstance(load, LoadPending)
    core.device_offline("alice", "phone", NOW)
    assert core.loaded(load.token, [_stored(1)], NOW) == []
    (again,) = core.device_online("alice", "phone", 11, NOW)
    (newer,) = core.device_online("alice", "phone", 14, NOW)  # moved to another access server
    assert isinstance(again, LoadPending)
    assert isinstance(newer, LoadPending)
    assert core.loaded(again.token, [_stored(1)], NOW) == []
    assert pushed_to(core.loaded(newer.token, [_stored(1)], NOW)) == {("alice", "phone", 14)}


def test_load_failure_is_counted_and_the_next_login_works() -> None:
    metrics = Metrics()
    core = NotifyCore(CONFIG, metrics=metrics)
    (load,) = core.device_online("alice", "phone", 11, NOW)
    assert isinstance(load, LoadPending)
    assert core.load_failed(load.token, ErrorCode.STORAGE_UNAVAILABLE, NOW) == []
    assert metrics.value("notify_errors_total", code="STORAGE_UNAVAILABLE") == 1
    (retry,) = core.device_online("alice", "phone", 11, NOW)
    assert isinstance(retry, LoadPending)
    assert [f.header.msg_id for f in pushes(core.loaded(retry.token, [_stored(8)], NOW))] == [8]


# -- frames ------------------------------------------------------------------------------------------------


def client_ack(ids: list[int], **changes: object) -> tuple[Header, bytes]:
    header = Header(
        biz=Biz.NOTIFY,
        func=NotifyFunc.ACK,
        seq=9,
        msg_id=77,
        access_id=11,
        sender_uid="alice",
        sender_device="phone",
        session=5,
    ).replace(**changes)
    return header, pb.NotifyAck(notify_ids=ids).SerializeToString()


def server_notify(note: pb.Notification, **changes: object) -> tuple[Header, bytes]:
    header = Header(biz=Biz.NOTIFY, func=NotifyFunc.NOTIFY, seq=3, msg_id=99, receiver_uid="alice").replace(
        **changes
    )
    return header, note.SerializeToString()


def test_client_ack_becomes_a_store_ack() -> None:
    core = NotifyCore(CONFIG)
    header, body = client_ack([5, 3, 5, 0])
    assert core.frame_received(header, body, [], NOW) == [StoreAck("alice", (3, 5))]
    header, body = client_ack([])
    assert core.frame_received(header, body, [], NOW) == []


STATUS = {
    Outcome.DELIVERED: pb.SendStatus.SEND_STATUS_DELIVERED,
    Outcome.PUSHED: pb.SendStatus.SEND_STATUS_STORED,  # stored; delivered for sure once a device acks
    Outcome.STORED: pb.SendStatus.SEND_STATUS_STORED,
    Outcome.DROPPED: pb.SendStatus.SEND_STATUS_DROPPED,
    Outcome.DUPLICATE: pb.SendStatus.SEND_STATUS_DUPLICATE,
    Outcome.SUPERSEDED: pb.SendStatus.SEND_STATUS_DROPPED,  # neither kept nor pushed: a newer one is
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_business_servers_answer_says_what_became_of_the_notification(case: Case) -> None:
    """The submission table again, as frames: the NOTIFY/ACK response carries the outcome as a status."""
    core = NotifyCore(CONFIG)
    note = pb.Notification(type=case.type, notify_id=41, store=case.store_field)  # type: ignore[arg-type]
    actions = core.frame_received(*server_notify(note), case.devices, NOW)
    if case.store_answer is not None:
        (store,) = actions
        assert isinstance(store, StoreNotification)
        actions = core.stored(store.token, case.store_answer, NOW)
    (reply,) = [a for a in actions if isinstance(a, Reply)]
    ack = pb.NotifyAck.FromString(reply.body)
    assert list(ack.notify_ids) == [41]
    assert ack.status == STATUS[case.outcome]


def test_business_frame_is_answered_after_the_commit() -> None:
    core = NotifyCore(CONFIG)
    header, body = server_notify(pb.Notification(type="friend_request", payload=b"x", notify_id=500))
    (store,) = core.frame_received(header, body, [PHONE], NOW)
    assert isinstance(store, StoreNotification)
    actions = core.stored(store.token, UpsertResult.STORED, NOW)
    assert pushed_to(actions) == {("alice", "phone", 11)}
    (reply,) = [a for a in actions if isinstance(a, Reply)]
    assert reply.header.func == NotifyFunc.ACK
    assert reply.header.flags == Flags.RESPONSE
    assert (reply.header.seq, reply.header.msg_id) == (3, 99)
    assert list(pb.NotifyAck.FromString(reply.body).notify_ids) == [500]
    # Discardable: answered at once.
    header, body = server_notify(pb.Notification(type="typing"))
    (at_once,) = core.frame_received(header, body, [], NOW)
    assert isinstance(at_once, Reply)
    assert not at_once.header.flags & Flags.ERROR
    # A failed commit is an error response.
    header, body = server_notify(pb.Notification(type="friend_request"))
    (store,) = core.frame_received(header, body, [], NOW)
    assert isinstance(store, StoreNotification)
    (failed,) = core.store_failed(store.token, ErrorCode.STORAGE_UNAVAILABLE, NOW)
    assert isinstance(failed, Reply)
    assert failed.header.error == ErrorCode.STORAGE_UNAVAILABLE
    assert failed.header.flags == Flags.RESPONSE | Flags.ERROR


N = pb.Notification
T = ErrorCode
BAD_FRAMES: list[tuple[str, tuple[Header, bytes], ErrorCode, bool]] = [
    # (name, frame, code, answered through the client's access server)
    ("client-sends-notify",
     server_notify(N(type="t"), access_id=11, sender_uid="eve", sender_device="d"), T.FORBIDDEN, True),
    ("no-receiver", server_notify(N(type="t"), receiver_uid=""), T.UNKNOWN_RECEIVER, False),
    ("no-type", server_notify(N(payload=b"x")), T.MALFORMED_BODY, False),
    ("long-type", server_notify(N(type="t" * 65)), T.PAYLOAD_TOO_LARGE, False),
    ("long-merge-key", server_notify(N(type="t", merge_key="m" * 129)), T.PAYLOAD_TOO_LARGE, False),
    ("big-payload", server_notify(N(type="t", payload=b"x" * 4097)), T.PAYLOAD_TOO_LARGE, False),
    ("id-too-big", server_notify(N(type="t", notify_id=2**63)), T.MALFORMED_BODY, False),
    ("unknown-policy", server_notify(N(type="t", store=9)), T.MALFORMED_BODY, False),  # type: ignore[arg-type]
    ("long-uid", server_notify(N(type="t"), receiver_uid="u" * 129), T.MALFORMED_HEADER, False),
    ("garbage-notify",
     (Header(biz=Biz.NOTIFY, func=NotifyFunc.NOTIFY, receiver_uid="alice"), b"\xff\xff\xff"),
     T.MALFORMED_BODY, False),
    ("garbage-ack", (client_ack([1])[0], b"\x0a\xff"), T.MALFORMED_BODY, True),
    ("too-many-acks", client_ack(list(range(1, 258))), T.PAYLOAD_TOO_LARGE, True),
    ("ack-without-device", client_ack([1], sender_device=""), T.FORGED_SENDER, True),
    ("ack-without-access", client_ack([1], access_id=0), T.FORGED_SENDER, False),
    ("response-flag", client_ack([1], flags=Flags.RESPONSE), T.UNEXPECTED_MESSAGE, True),
    ("wrong-code", client_ack([1], biz=Biz.CHAT, func=ChatFunc.TEXT), T.UNEXPECTED_MESSAGE, True),
]  # fmt: skip


@pytest.mark.parametrize(("name", "frame", "code", "to_client"), BAD_FRAMES, ids=[c[0] for c in BAD_FRAMES])
def test_bad_frames_get_one_error(
    name: str, frame: tuple[Header, bytes], code: ErrorCode, to_client: bool
) -> None:
    metrics = Metrics()
    core = NotifyCore(CONFIG, metrics=metrics)
    header, body = frame
    (answer,) = core.frame_received(header, body, [PHONE], NOW)
    assert answer.header.error == code  # type: ignore[union-attr]
    assert answer.header.flags == Flags.RESPONSE | Flags.ERROR  # type: ignore[union-attr]
    assert pb.ErrorReport.FromString(answer.body).code == code  # type: ignore[union-attr]
    if to_client:
        assert isinstance(answer, SendFrame)
        assert answer.access_id == header.access_id
        assert (answer.header.receiver_uid, answer.header.receiver_device) == (
            header.sender_uid,
            header.sender_device,
        )
    else:
        assert isinstance(answer, Reply)
    assert metrics.value("notify_errors_total", code=code.name) == 1
    # The core keeps serving.
    _, actions = core.submit("alice", pb.Notification(type="typing"), [PHONE], NOW)
    assert reports(actions)[0].outcome is Outcome.DELIVERED


def test_python_submissions_raise_typed_errors() -> None:
    core = NotifyCore(CONFIG)
    with pytest.raises(NotificationRejected) as info:
        core.submit("alice", pb.Notification(type=""), [], NOW)
    assert info.value.code is ErrorCode.MALFORMED_BODY
    with pytest.raises(NotificationRejected) as info:
        core.submit("", pb.Notification(type="t"), [], NOW)
    assert info.value.code is ErrorCode.UNKNOWN_RECEIVER


def test_metrics_count_outcomes_and_frames() -> None:
    metrics = Metrics()
    core = NotifyCore(CONFIG, metrics=metrics)
    core.submit("alice", pb.Notification(type="typing"), [PHONE, PAD], NOW)
    core.submit("alice", pb.Notification(type="typing"), [], NOW)
    assert metrics.value("notify_notifications_total", outcome="delivered") == 1
    assert metrics.value("notify_notifications_total", outcome="dropped") == 1
    assert metrics.value("notify_pushed_total") == 2
    assert metrics.value("notify_frames_out_total", biz=Biz.NOTIFY, func=NotifyFunc.NOTIFY) == 2


def test_config_validates_and_reads_strings() -> None:
    cfg = NotifyConfig(policies={"a": "keep_latest"}, default_policy="keep_latest")  # type: ignore[dict-item, arg-type]
    assert cfg.policy_of("a") is Policy.KEEP_LATEST
    assert cfg.policy_of("zzz") is Policy.KEEP_LATEST
    for bad in (
        {"node_id": 256},
        {"policies": {"a": "sometimes"}},
        {"policies": {"": "drop"}},
        {"login_page": 0},
    ):
        with pytest.raises(ValueError, match=r"node_id|policy|type names|login_page"):
            NotifyConfig(**bad)


# -- concurrent answers: an older version never reaches a device after a newer one --------------------------


def _ids(actions: list[Action]) -> list[int]:
    return [f.header.msg_id for f in pushes(actions)]


def test_an_older_version_answered_after_a_newer_one_was_pushed_is_not_pushed() -> None:
    """Both versions commit (1 before 2), but their answers reach the core in the other order: pushing
    version 1 last would leave the device showing the stale one."""
    metrics = Metrics()
    core = NotifyCore(CONFIG, metrics=metrics)
    t1, _ = core.submit("alice", pb.Notification(type="friend_request", notify_id=1), [PHONE], NOW)
    t2, _ = core.submit("alice", pb.Notification(type="friend_request", notify_id=2), [PHONE], NOW)
    assert _ids(core.stored(t2, UpsertResult.STORED, NOW)) == [2]
    late = core.stored(t1, UpsertResult.STORED, NOW)
    assert _ids(late) == []
    assert [r.outcome for r in reports(late)] == [Outcome.SUPERSEDED]
    assert metrics.value("notify_tracked_versions") == 0  # nothing in flight: nothing remembered


def test_a_login_page_read_before_a_newer_live_push_does_not_push_the_stale_row() -> None:
    metrics = Metrics()
    core = NotifyCore(CONFIG, metrics=metrics)
    (load,) = core.device_online("alice", "phone", 11, NOW)
    assert isinstance(load, LoadPending)
    # The page was read while version 5 was being committed; version 5 is pushed live first.
    token, _ = core.submit("alice", pb.Notification(type="friend_request", notify_id=5), [], NOW)
    assert _ids(core.stored(token, UpsertResult.STORED, NOW)) == [5]
    assert metrics.value("notify_tracked_versions") == 1
    page = [_stored(3, "friend_request"), _stored(4, "other")]
    assert _ids(core.loaded(load.token, page, NOW)) == [4]
    assert metrics.value("notify_tracked_versions") == 0


def test_a_version_pushed_before_a_device_came_online_still_reaches_it_at_login() -> None:
    core = NotifyCore(CONFIG)
    (pad_load,) = core.device_online("alice", "pad", 12, NOW)  # keeps alice's work in flight
    assert isinstance(pad_load, LoadPending)
    token, _ = core.submit("alice", pb.Notification(type="friend_request", notify_id=5), [], NOW)
    assert _ids(core.stored(token, UpsertResult.STORED, NOW)) == [5]  # to the pad only
    (phone_load,) = core.device_online("alice", "phone", 11, NOW)
    assert isinstance(phone_load, LoadPending)
    assert _ids(core.loaded(phone_load.token, [_stored(5, "friend_request")], NOW)) == [5]
    assert _ids(core.loaded(pad_load.token, [_stored(5, "friend_request")], NOW)) == [5]


# -- sessions: the access servers' events and the location notices ------------------------------------------

# A word about a device's session: ("on" | "off", access server, session id), as an access server's event or
# a location notice says it (the core takes both through the same two calls).
Word = tuple[str, int, int]


def _feed(core: NotifyCore, words: list[Word], now: float = NOW) -> list[LoadPending]:
    loads: list[LoadPending] = []
    for kind, access, session in words:
        if kind == "on":
            actions = core.device_online("alice", "phone", access, now, session=session)
        else:
            actions = core.device_offline("alice", "phone", now, access_id=access, session=session)
        loads += [a for a in actions if isinstance(a, LoadPending)]
    return loads


SESSION_CASES: list[tuple[str, list[Word], int, dict[str, int]]] = [
    # name, words in the order they reach the core, login deliveries started, the device's seat at the end
    ("event then notice of one session", [("on", 11, 5), ("on", 11, 5)], 1, {"phone": 11}),
    ("quick reconnect: events only", [("on", 11, 5), ("off", 11, 5), ("on", 11, 6)], 2, {"phone": 11}),
    (
        "moved: event and MOVED notice",
        [("on", 11, 5), ("off", 11, 5), ("on", 12, 6), ("on", 12, 6)],
        2,
        {"phone": 12},
    ),
    ("online word after its offline word", [("off", 11, 5), ("on", 11, 5)], 0, {}),
    ("late offline of the older session", [("on", 11, 5), ("on", 11, 6), ("off", 11, 5)], 2, {"phone": 11}),
    ("offline of the current session", [("on", 11, 5), ("on", 11, 6), ("off", 11, 6)], 2, {}),
    (
        "replaced on another server, old server's offline",
        [("on", 11, 5), ("on", 12, 6), ("off", 11, 0)],
        2,
        {"phone": 12},
    ),
    ("session unknown: every word starts afresh", [("on", 11, 0), ("on", 11, 0)], 2, {"phone": 11}),
]


@pytest.mark.parametrize(
    ("words", "loads", "seat"), [c[1:] for c in SESSION_CASES], ids=[c[0] for c in SESSION_CASES]
)
def test_each_session_gets_one_login_delivery(words: list[Word], loads: int, seat: dict[str, int]) -> None:
    core = NotifyCore(CONFIG)
    assert len(_feed(core, words)) == loads
    assert core.online_devices("alice") == seat


def test_a_stale_online_word_is_counted() -> None:
    metrics = Metrics()
    core = NotifyCore(CONFIG, metrics=metrics)
    _feed(core, [("off", 11, 5), ("on", 11, 5)])
    assert metrics.value("notify_stale_sessions_total") == 1
    assert metrics.value("notify_ended_sessions") == 1


def test_a_session_heard_to_end_is_no_push_target() -> None:
    """The location service may still report a device whose line dropped (its view lags behind the access
    servers' events); once the core heard that session end, nothing is pushed to it and no outcome claims a
    push: a stored type is STORED, a discardable one DROPPED."""
    core = NotifyCore(CONFIG)
    lagging = DeviceLocation("alice", "phone", 11, 5)
    _feed(core, [("on", 11, 5), ("off", 11, 5)])
    _, actions = core.submit("alice", pb.Notification(type="typing"), [lagging], NOW)
    assert pushes(actions) == []
    assert reports(actions)[0].outcome is Outcome.DROPPED
    (store,) = core.submit("alice", pb.Notification(type="friend_request"), [lagging], NOW)[1]
    assert isinstance(store, StoreNotification)
    actions = core.stored(store.token, UpsertResult.STORED, NOW)
    assert pushes(actions) == []
    assert reports(actions)[0].outcome is Outcome.STORED


def test_a_session_that_ends_while_the_store_commits_is_not_pushed_to() -> None:
    core = NotifyCore(CONFIG)
    _feed(core, [("on", 11, 5)])
    token, _ = core.submit("alice", pb.Notification(type="friend_request"), [PHONE], NOW)
    _feed(core, [("off", 11, 5)])
    actions = core.stored(token, UpsertResult.STORED, NOW)
    assert (pushes(actions), reports(actions)[0].outcome) == ([], Outcome.STORED)
    # ... and one that starts meanwhile is pushed to (without naming a session: a live push goes to whatever
    # connection the device has).
    token, _ = core.submit("alice", pb.Notification(type="friend_request", notify_id=9), [], NOW)
    _feed(core, [("on", 11, 6)])
    actions = core.stored(token, UpsertResult.STORED, NOW)
    assert [(f.header.receiver_device, f.header.session) for f in pushes(actions)] == [("phone", 0)]
    assert reports(actions)[0].outcome is Outcome.PUSHED


def test_login_pushes_name_their_session() -> None:
    """So that the access server never hands a login page of an older session to a newer one, which gets a
    login delivery of its own."""
    core = NotifyCore(CONFIG)
    (load,) = _feed(core, [("on", 11, 5)])
    assert [f.header.session for f in pushes(core.loaded(load.token, [_stored(1)], NOW))] == [5]


def test_an_older_sessions_load_is_cancelled_by_the_newer_session() -> None:
    core = NotifyCore(CONFIG)
    first, second = _feed(core, [("on", 11, 5), ("off", 11, 5), ("on", 11, 6)])
    assert core.loaded(first.token, [_stored(1)], NOW) == []
    assert [
        (f.header.msg_id, f.header.session) for f in pushes(core.loaded(second.token, [_stored(1)], NOW))
    ] == [(1, 6)]
    assert core.loads_inflight == 0


def test_ended_sessions_are_forgotten_after_their_ttl() -> None:
    metrics = Metrics()
    core = NotifyCore(NotifyConfig(ended_session_ttl=10.0), metrics=metrics)
    _feed(core, [("on", 11, 5), ("off", 11, 5)])
    assert metrics.value("notify_ended_sessions") == 1
    assert _feed(core, [("on", 11, 5)], NOW + 9.9) == []
    assert metrics.value("notify_ended_sessions") == 1
    core.submit("bob", pb.Notification(type="t"), [], NOW + 10.0)
    assert metrics.value("notify_ended_sessions") == 0
