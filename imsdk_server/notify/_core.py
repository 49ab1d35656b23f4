"""The notification server's sans-IO core: submissions, acks, presence and store results in; actions out.

The core never touches a socket, a database or a clock. Its driver feeds it:

* :meth:`NotifyCore.submit` — a notification from a business server (Python API), with the receiver's online
  devices as the location service reports them;
* :meth:`NotifyCore.frame_received` — a ``NOTIFY`` frame: ``NOTIFY/NOTIFY`` from a business server (with the
  receiver's devices) or ``NOTIFY/ACK`` from a client through its access server;
* :meth:`NotifyCore.stored` / :meth:`NotifyCore.store_failed` — the outcome of a :class:`StoreNotification`;
* :meth:`NotifyCore.loaded` / :meth:`NotifyCore.load_failed` — the outcome of a :class:`LoadPending`;
* :meth:`NotifyCore.device_online` / :meth:`NotifyCore.device_offline` — a device's session started or ended:
  the access servers' own online/offline events (at once, with the session id) and the location service's
  notices (delayed by its grace window, and absent for a quick reconnect).

and carries out the actions each call returns, in order: :class:`SendFrame`, :class:`StoreNotification`,
:class:`LoadPending`, :class:`StoreAck`, and the two answers :class:`Report` (to a Python caller) and
:class:`Reply` (a response frame to the business server that sent a frame). ``now`` is wall-clock seconds:
it stamps ``created_at_ms`` and seeds the ids the core assigns. The protocol is in ``docs/notifications.md``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from google.protobuf.message import DecodeError

from imsdk_proto import messages as pb
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ErrorCode, Flags, NotifyFunc
from imsdk_proto.messages import StorePolicy
from imsdk_server.metrics import Metrics
from imsdk_server.notify._config import NotifyConfig, Policy
from imsdk_server.notify._errors import NotificationRejected
from imsdk_server.notify._records import MAX_NOTIFY_ID, MAX_UID, StoredNotification, UpsertResult

__all__ = [
    "Action",
    "DeviceLocation",
    "LoadPending",
    "NotifyCore",
    "Outcome",
    "Reply",
    "Report",
    "SendFrame",
    "StoreAck",
    "StoreNotification",
    "effective_policy",
]


class Outcome(Enum):
    """What became of one submitted notification."""

    DELIVERED = "delivered"
    """A discardable type, handed to the access servers of at least one live session of the receiver. It
    has no acknowledgement: this is as far as the server can follow it."""
    PUSHED = "pushed"
    """A stored type, stored and pushed to the receiver's live sessions. It stays pending until a device
    acknowledges it, and a device's next session gets it again if none does."""
    STORED = "stored"
    """No live session; stored and delivered at the receiver's next session."""
    DROPPED = "dropped"
    """No live session and the type is discardable."""
    DUPLICATE = "duplicate"
    """The store already held this very ``notify_id`` (a retry); nothing was pushed again."""
    SUPERSEDED = "superseded"
    """The store holds a newer notification of the same key; this older one was neither kept nor pushed."""


# -- inputs and actions --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceLocation:
    """One online device of a user and the access server it is connected to."""

    uid: str
    device: str
    access_id: int
    session: int = 0
    """The access server's session id of the connection (0: unknown)."""


@dataclass(frozen=True, slots=True)
class SendFrame:
    """Hand a frame to access server ``access_id``, which delivers it by the header's receiver."""

    access_id: int
    header: Header
    body: bytes


@dataclass(frozen=True, slots=True)
class StoreNotification:
    """Upsert ``notification`` (``NotificationStore.upsert``); answer with :meth:`NotifyCore.stored` or
    :meth:`NotifyCore.store_failed`."""

    token: int
    notification: StoredNotification


@dataclass(frozen=True, slots=True)
class LoadPending:
    """Read a page of ``uid``'s pending notifications (``NotificationStore.pending``); answer with
    :meth:`NotifyCore.loaded` or :meth:`NotifyCore.load_failed`."""

    token: int
    uid: str
    after_id: int
    limit: int


@dataclass(frozen=True, slots=True)
class StoreAck:
    """Acknowledge ``notify_ids`` of ``uid`` (``NotificationStore.ack``); nothing is answered."""

    uid: str
    notify_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Report:
    """The result of :meth:`NotifyCore.submit` ``token``: an outcome, or an ``error`` code."""

    token: int
    notify_id: int
    outcome: Outcome | None
    error: ErrorCode | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A response frame for the business server whose ``NOTIFY/NOTIFY`` frame ``token`` answers (0 when the
    frame was refused before it got a token); send it back on the link the request came in on."""

    token: int
    header: Header
    body: bytes


_M = TypeVar("_M", bound=pb.Message)

Action = SendFrame | StoreNotification | LoadPending | StoreAck | Report | Reply

_TO_WIRE = {
    Policy.DROP: StorePolicy.STORE_POLICY_DROP,
    Policy.KEEP_LATEST: StorePolicy.STORE_POLICY_KEEP_LATEST,
}
_FROM_WIRE = {v: k for k, v in _TO_WIRE.items()}
#: The status a business server's ``NOTIFY/ACK`` carries. ``SendStatus`` has no "superseded": such a
#: notification was neither kept nor pushed (a newer one of its key is), which is what ``DROPPED`` says.
#: Nor has it "pushed": a pushed stored notification is delivered for sure only once a device acks it, and
#: until then it is stored, which is what ``STORED`` says.
_STATUS = {
    Outcome.DELIVERED: pb.SendStatus.SEND_STATUS_DELIVERED,
    Outcome.PUSHED: pb.SendStatus.SEND_STATUS_STORED,
    Outcome.STORED: pb.SendStatus.SEND_STATUS_STORED,
    Outcome.DROPPED: pb.SendStatus.SEND_STATUS_DROPPED,
    Outcome.DUPLICATE: pb.SendStatus.SEND_STATUS_DUPLICATE,
    Outcome.SUPERSEDED: pb.SendStatus.SEND_STATUS_DROPPED,
}


def effective_policy(config: NotifyConfig, note: pb.Notification) -> Policy:
    """The policy of ``note``: its own ``store`` field when set, else the type's, else the default."""
    explicit = _FROM_WIRE.get(note.store)
    return explicit if explicit is not None else config.policy_of(note.type)


# -- state ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Seat:
    """Where a device's current session is, as far as the core heard (``session`` 0: not known)."""

    access_id: int
    session: int


@dataclass(slots=True)
class _Submission:
    token: int
    uid: str
    note: pb.Notification
    policy: Policy
    targets: dict[str, _Seat]
    request: Header | None


@dataclass(slots=True)
class _Load:
    uid: str
    device: str
    access_id: int
    session: int
    generation: int


_EndedKey = tuple[str, str, int, int]


class NotifyCore:
    """The notification server's state as data: submissions waiting for the store, logins being served,
    and the online devices it heard of."""

    def __init__(self, config: NotifyConfig | None = None, *, metrics: Metrics | None = None) -> None:
        self.config = config or NotifyConfig()
        self._m = (metrics or Metrics()).child("notify")
        self._next_token = 1
        self._last_id = 0
        # uid -> device -> the session the core last heard start there. A seat is created by the first
        # word of a new session (an access server's event or a location notice) and that creation is what
        # starts the session's login delivery, so the second word of the same session starts nothing.
        self._online: dict[str, dict[str, _Seat]] = {}
        # Sessions heard to end, (uid, device, access_id, session) -> until when they are remembered: their
        # online event or notice arriving late (the two queue topics are not ordered) is ignored, and they
        # are never a push target.
        self._ended: dict[_EndedKey, float] = {}
        self._ended_order: deque[tuple[float, _EndedKey]] = deque()
        self._submissions: dict[int, _Submission] = {}
        self._loads: dict[int, _Load] = {}
        self._logins: dict[tuple[str, str], int] = {}
        self._generation = 0
        # While a user has work in flight (a stored submission, a login load), the highest version pushed
        # per (type, merge_key): a store answer or a login page that arrives late with an older version is
        # not pushed after a newer one. Forgotten when the user's work in flight drops to zero.
        self._busy: dict[str, int] = {}
        self._pushed: dict[str, dict[tuple[str, str], int]] = {}
        self._m_outcomes = {o: self._m.counter("notifications_total", outcome=o.value) for o in Outcome}
        self._m_pushed = self._m.counter("pushed_total")
        self._m_login = self._m.counter("login_delivered_total")
        self._m_acked = self._m.counter("acked_total")
        self._m_stale = self._m.counter("stale_sessions_total")
        self._m.gauge("submissions_inflight", lambda: float(len(self._submissions)))
        self._m.gauge("loads_inflight", lambda: float(len(self._loads)))
        self._m.gauge("online_devices", lambda: float(sum(len(d) for d in self._online.values())))
        self._m.gauge("tracked_versions", lambda: float(sum(len(k) for k in self._pushed.values())))
        self._m.gauge("ended_sessions", lambda: float(len(self._ended)))

    # -- bookkeeping -----------------------------------------------------------------------------------------

    def _token(self) -> int:
        token = self._next_token
        self._next_token += 1
        return token

    def next_notify_id(self, now: float) -> int:
        """A fresh id: ``(now_ms << 20) | (counter << 8) | node_id``, strictly above every id given before."""
        candidate = (int(now * 1000) << 20) | self.config.node_id
        if candidate <= self._last_id:
            candidate = self._last_id + 256  # next counter value, same node byte
        self._last_id = candidate
        return candidate

    def online_devices(self, uid: str) -> dict[str, int]:
        """Devices of ``uid`` whose current session the core heard start (device → access-server id)."""
        return {device: seat.access_id for device, seat in self._online.get(uid, {}).items()}

    def _is_ended(self, uid: str, device: str, access_id: int, session: int) -> bool:
        return bool(session) and (uid, device, access_id, session) in self._ended

    def _forget_ended(self, now: float) -> None:
        order = self._ended_order
        while order and order[0][0] <= now:
            until, key = order.popleft()
            if self._ended.get(key) == until:
                del self._ended[key]

    def _targets(self, uid: str, devices: Iterable[DeviceLocation]) -> dict[str, _Seat]:
        """The live sessions of ``uid``: what the location service reports, then the sessions the core heard
        start (fresher: the location service's view may lag behind the access servers' events), without
        any session the core heard end."""
        targets = {
            d.device: _Seat(d.access_id, d.session)
            for d in devices
            if d.uid == uid and d.access_id and not self._is_ended(uid, d.device, d.access_id, d.session)
        }
        targets.update(self._online.get(uid, {}))
        return targets

    def _live(self, uid: str, targets: dict[str, _Seat]) -> dict[str, _Seat]:
        """``targets`` without the sessions that ended meanwhile, plus the sessions that started meanwhile."""
        live = {
            device: seat
            for device, seat in targets.items()
            if not self._is_ended(uid, device, seat.access_id, seat.session)
        }
        live.update(self._online.get(uid, {}))
        return live

    @property
    def inflight(self) -> int:
        """Submissions waiting for the store."""
        return len(self._submissions)

    @property
    def loads_inflight(self) -> int:
        """Login deliveries waiting for the store."""
        return len(self._loads)

    def _out(self, access_id: int, header: Header, body: bytes) -> SendFrame:
        self._m.counter("frames_out_total", biz=header.biz, func=header.func).inc()
        return SendFrame(access_id, header, body)

    def _count_error(self, code: ErrorCode) -> None:
        self._m.counter("errors_total", code=code.name).inc()

    def _hold(self, uid: str) -> None:
        self._busy[uid] = self._busy.get(uid, 0) + 1

    def _release(self, uid: str) -> None:
        left = self._busy[uid] - 1
        if left:
            self._busy[uid] = left
        else:
            del self._busy[uid]
            self._pushed.pop(uid, None)

    def _newer_pushed(self, uid: str, kind: str, merge_key: str, notify_id: int) -> bool:
        """Whether a newer version of this key was pushed while ``uid`` had work in flight."""
        pushed = self._pushed.get(uid)
        return pushed is not None and pushed.get((kind, merge_key), 0) > notify_id

    def _note_pushed(self, uid: str, kind: str, merge_key: str, notify_id: int) -> None:
        if uid in self._busy:
            versions = self._pushed.setdefault(uid, {})
            key = (kind, merge_key)
            if versions.get(key, 0) < notify_id:
                versions[key] = notify_id

    # -- submissions -----------------------------------------------------------------------------------------

    def _check(self, uid: str, note: pb.Notification) -> None:
        cfg = self.config
        if not uid:
            raise NotificationRejected("no receiver", code=ErrorCode.UNKNOWN_RECEIVER)
        if len(uid) > MAX_UID:
            raise NotificationRejected(
                f"receiver uid over {MAX_UID} characters", code=ErrorCode.MALFORMED_HEADER
            )
        if not note.type:
            raise NotificationRejected("a notification needs a type")
        if len(note.type) > cfg.max_type_chars:
            raise NotificationRejected(
                f"type over {cfg.max_type_chars} characters", code=ErrorCode.PAYLOAD_TOO_LARGE
            )
        if len(note.merge_key) > cfg.max_merge_key_chars:
            raise NotificationRejected(
                f"merge_key over {cfg.max_merge_key_chars} characters", code=ErrorCode.PAYLOAD_TOO_LARGE
            )
        if len(note.payload) > cfg.max_payload_bytes:
            raise NotificationRejected(
                f"payload over {cfg.max_payload_bytes} bytes", code=ErrorCode.PAYLOAD_TOO_LARGE
            )
        if note.notify_id > MAX_NOTIFY_ID:
            raise NotificationRejected("notify_id must be below 2**63")
        if note.store not in (StorePolicy.STORE_POLICY_UNSPECIFIED, *_FROM_WIRE):
            raise NotificationRejected(f"unknown store policy {note.store}")

    def submit(
        self,
        uid: str,
        note: pb.Notification,
        devices: Iterable[DeviceLocation],
        now: float,
        *,
        request: Header | None = None,
    ) -> tuple[int, list[Action]]:
        """Notify ``uid`` with ``note``; ``devices`` are the online devices the location service reports.

        Returns the submission's token (named by the :class:`Report` or :class:`Reply` that answers it) and
        the actions. Raises :class:`NotificationRejected` for a notification that breaks the limits.
        """
        self._check(uid, note)
        token = self._token()
        policy = effective_policy(self.config, note)
        note = pb.Notification(
            type=note.type,
            payload=note.payload,
            merge_key=note.merge_key,
            notify_id=note.notify_id or self.next_notify_id(now),
            created_at_ms=note.created_at_ms or int(now * 1000),
        )
        note.store = _TO_WIRE[policy]
        self._forget_ended(now)
        targets = self._targets(uid, devices)
        sub = _Submission(token, uid, note, policy, targets, request)
        if policy is Policy.DROP:
            if not targets:
                return token, self._answer(sub, Outcome.DROPPED)
            actions = self._push_all(sub, targets)
            return token, actions + self._answer(sub, Outcome.DELIVERED)
        self._submissions[token] = sub
        self._hold(uid)
        record = StoredNotification(
            uid=uid,
            type=note.type,
            merge_key=note.merge_key,
            notify_id=note.notify_id,
            payload=note.payload,
            created_ms=note.created_at_ms,
        )
        return token, [StoreNotification(token, record)]

    def _push_all(self, sub: _Submission, targets: dict[str, _Seat]) -> list[Action]:
        # A live push names no session: it goes to whatever connection the device has now (a session the
        # core has not heard of yet included); a stored one that finds none stays pending.
        body = sub.note.SerializeToString()
        return [
            self._push(sub.uid, device, seat.access_id, sub.note.notify_id, body)
            for device, seat in targets.items()
        ]

    def _push(
        self, uid: str, device: str, access_id: int, notify_id: int, body: bytes, session: int = 0
    ) -> SendFrame:
        self._m_pushed.inc()
        header = Header(
            biz=Biz.NOTIFY,
            func=NotifyFunc.NOTIFY,
            msg_id=notify_id,
            access_id=access_id,
            receiver_uid=uid,
            receiver_device=device,
            session=session,
        )
        return self._out(access_id, header, body)

    def _answer(
        self, sub: _Submission, outcome: Outcome | None, error: ErrorCode | None = None
    ) -> list[Action]:
        notify_id = sub.note.notify_id
        if outcome is not None:
            self._m_outcomes[outcome].inc()
        else:
            assert error is not None
            self._count_error(error)
        if sub.request is None:
            return [Report(sub.token, notify_id, outcome, error)]
        if error is not None:
            body = pb.ErrorReport(code=int(error), message="the notification was not stored; resend it")
            return [self._reply(sub.token, sub.request, body.SerializeToString(), error)]
        assert outcome is not None
        ack = pb.NotifyAck(notify_ids=[notify_id], status=_STATUS[outcome])
        return [self._reply(sub.token, sub.request, ack.SerializeToString(), None)]

    def _reply(self, token: int, req: Header, body: bytes, error: ErrorCode | None) -> Reply:
        flags = Flags.RESPONSE | (Flags.ERROR if error else Flags(0))
        header = Header(
            biz=Biz.NOTIFY,
            func=NotifyFunc.ACK,
            seq=req.seq,
            msg_id=req.msg_id,
            flags=flags,
            error=int(error or 0),
            receiver_uid=req.receiver_uid,
            session=req.session,
        )
        self._m.counter("frames_out_total", biz=header.biz, func=header.func).inc()
        return Reply(token, header, body)

    def stored(self, token: int, result: UpsertResult, now: float) -> list[Action]:
        """The store's answer to :class:`StoreNotification` ``token``."""
        sub = self._submissions.pop(token, None)
        if sub is None:
            return []
        try:
            return self._stored(sub, result, now)
        finally:
            self._release(sub.uid)

    def _stored(self, sub: _Submission, result: UpsertResult, now: float) -> list[Action]:
        if result is UpsertResult.DUPLICATE:
            return self._answer(sub, Outcome.DUPLICATE)
        note = sub.note
        if result is UpsertResult.SUPERSEDED or self._newer_pushed(
            sub.uid, note.type, note.merge_key, note.notify_id
        ):
            # Committed, but a newer version of the key was committed and pushed meanwhile: pushing this
            # one now would leave the devices showing the older notification.
            return self._answer(sub, Outcome.SUPERSEDED)
        self._forget_ended(now)
        targets = self._live(sub.uid, sub.targets)
        if not targets:
            return self._answer(sub, Outcome.STORED)
        self._note_pushed(sub.uid, note.type, note.merge_key, note.notify_id)
        return self._push_all(sub, targets) + self._answer(sub, Outcome.PUSHED)

    def store_failed(self, token: int, code: ErrorCode, now: float) -> list[Action]:
        """The store could not commit :class:`StoreNotification` ``token``: the sender gets ``code``."""
        sub = self._submissions.pop(token, None)
        if sub is None:
            return []
        self._release(sub.uid)
        return self._answer(sub, None, code)

    # -- frames ----------------------------------------------------------------------------------------------

    def frame_received(
        self, header: Header, body: bytes, devices: Iterable[DeviceLocation], now: float
    ) -> list[Action]:
        """A ``NOTIFY`` frame. ``devices`` are the online devices of ``header.receiver_uid`` (only read for a
        ``NOTIFY/NOTIFY``). Every refused frame gets one error response."""
        self._m.counter("frames_in_total", biz=header.biz, func=header.func).inc()
        try:
            if header.is_response:
                raise NotificationRejected(
                    "the notify server takes requests", code=ErrorCode.UNEXPECTED_MESSAGE
                )
            if header.biz == Biz.NOTIFY and header.func == NotifyFunc.ACK:
                return self._client_ack(header, body)
            if header.biz == Biz.NOTIFY and header.func == NotifyFunc.NOTIFY:
                if header.access_id != 0 or header.sender_device:
                    raise NotificationRejected("clients may not send notifications", code=ErrorCode.FORBIDDEN)
                note = self._decode(pb.Notification, body)
                _, actions = self.submit(header.receiver_uid, note, devices, now, request=header)
                return actions
            raise NotificationRejected(
                f"code ({header.biz}, {header.func}) is not for the notify server",
                code=ErrorCode.UNEXPECTED_MESSAGE,
            )
        except NotificationRejected as exc:
            return self._refuse(header, exc.code, str(exc))

    def _decode(self, cls: type[_M], body: bytes) -> _M:
        if len(body) > self.config.max_payload_bytes + 1024:
            raise NotificationRejected("body too large", code=ErrorCode.PAYLOAD_TOO_LARGE)
        try:
            return cls.FromString(body)
        except (DecodeError, RuntimeError, ValueError):
            raise NotificationRejected(f"body does not decode as {cls.__name__}") from None

    def _refuse(self, req: Header, code: ErrorCode, message: str) -> list[Action]:
        self._count_error(code)
        body = pb.ErrorReport(code=int(code), message=message).SerializeToString()
        if req.access_id:  # a client's frame: answer through its access server
            if not req.sender_uid:
                return []
            flags = Flags.RESPONSE | Flags.ERROR
            header = Header(
                biz=req.biz,
                func=req.func,
                seq=req.seq,
                msg_id=req.msg_id,
                access_id=req.access_id,
                flags=flags,
                error=int(code),
                receiver_uid=req.sender_uid,
                receiver_device=req.sender_device,
                session=req.session,
            )
            return [self._out(req.access_id, header, body)]
        return [self._reply(0, req, body, code)]

    def _client_ack(self, header: Header, body: bytes) -> list[Action]:
        if not header.sender_uid or not header.sender_device or header.access_id == 0:
            raise NotificationRejected(
                "the ack carries no authenticated sender", code=ErrorCode.FORGED_SENDER
            )
        ack = self._decode(pb.NotifyAck, body)
        if len(ack.notify_ids) > self.config.max_ack_ids:
            raise NotificationRejected(
                f"more than {self.config.max_ack_ids} ids in one ack", code=ErrorCode.PAYLOAD_TOO_LARGE
            )
        ids = tuple(sorted({i for i in ack.notify_ids if 0 < i <= MAX_NOTIFY_ID}))
        if not ids:
            return []
        self._m_acked.inc(len(ids))
        return [StoreAck(header.sender_uid, ids)]

    # -- presence and login delivery -------------------------------------------------------------------------

    def device_online(
        self, uid: str, device: str, access_id: int, now: float, *, session: int = 0
    ) -> list[Action]:
        """A session of ``device`` started on access server ``access_id``: remember it and deliver ``uid``'s
        pending notifications to it.

        Both an access server's online event and a location notice for one session may arrive (in either
        order): with its ``session`` id known, only the first starts a login delivery. A session already
        heard to end is ignored (its online word came late). With ``session`` 0 (not known) every call
        starts a login delivery afresh.
        """
        self._forget_ended(now)
        if self._is_ended(uid, device, access_id, session):
            self._m_stale.inc()
            return []
        seat = _Seat(access_id, session)
        devices = self._online.setdefault(uid, {})
        if session and devices.get(device) == seat:
            return []  # this session's login delivery has started already
        devices[device] = seat
        self._generation += 1
        self._logins[(uid, device)] = self._generation
        token = self._token()
        self._loads[token] = _Load(uid, device, access_id, session, self._generation)
        self._hold(uid)  # until the last page of this login is answered
        return [LoadPending(token, uid, 0, self.config.login_page)]

    def device_offline(
        self, uid: str, device: str, now: float, *, access_id: int = 0, session: int = 0
    ) -> list[Action]:
        """A session of ``device`` ended: forget it, cancel its login delivery, and remember the session as
        ended for :attr:`NotifyConfig.ended_session_ttl` seconds.

        ``access_id`` and ``session`` name the session (0: any); a device whose current session is another
        one (it reconnected meanwhile) keeps it.
        """
        self._forget_ended(now)
        if access_id and session:
            key = (uid, device, access_id, session)
            until = now + self.config.ended_session_ttl
            self._ended[key] = until
            self._ended_order.append((until, key))
        devices = self._online.get(uid)
        seat = devices.get(device) if devices is not None else None
        if devices is None or seat is None:
            return []
        if (access_id and seat.access_id != access_id) or (session and seat.session not in (0, session)):
            return []  # a word about an older session: the device is connected again
        del devices[device]
        if not devices:
            del self._online[uid]
        self._logins.pop((uid, device), None)
        return []

    def loaded(self, token: int, records: Sequence[StoredNotification], now: float) -> list[Action]:
        """The store's answer to :class:`LoadPending` ``token``: push the page, ask for the next one."""
        load = self._loads.pop(token, None)
        if load is None:
            return []
        if self._logins.get((load.uid, load.device)) != load.generation:
            self._release(load.uid)
            return []  # the device went offline, or a newer login replaced this one
        actions: list[Action] = []
        for rec in records:
            if rec.uid != load.uid or not rec.pending:
                continue
            if self._newer_pushed(load.uid, rec.type, rec.merge_key, rec.notify_id):
                continue  # read before a newer version was committed and pushed live
            self._note_pushed(load.uid, rec.type, rec.merge_key, rec.notify_id)
            note = pb.Notification(
                type=rec.type,
                payload=rec.payload,
                merge_key=rec.merge_key,
                store=StorePolicy.STORE_POLICY_KEEP_LATEST,
                notify_id=rec.notify_id,
                created_at_ms=rec.created_ms,
            )
            self._m_login.inc()
            # Named after the session it is for: the access server does not hand it to a newer session of
            # the device, which has a login delivery of its own.
            actions.append(
                self._push(
                    load.uid,
                    load.device,
                    load.access_id,
                    rec.notify_id,
                    note.SerializeToString(),
                    load.session,
                )
            )
        if records and len(records) >= self.config.login_page:
            next_token = self._token()
            self._loads[next_token] = load
            actions.append(LoadPending(next_token, load.uid, records[-1].notify_id, self.config.login_page))
        else:
            del self._logins[(load.uid, load.device)]
            self._release(load.uid)
        return actions

    def load_failed(self, token: int, code: ErrorCode, now: float) -> list[Action]:
        """A login load failed: nothing is pushed now; the notifications stay for the next login."""
        load = self._loads.pop(token, None)
        if load is None:
            return []
        if self._logins.get((load.uid, load.device)) == load.generation:
            del self._logins[(load.uid, load.device)]
        self._release(load.uid)
        self._count_error(code)
        return []
