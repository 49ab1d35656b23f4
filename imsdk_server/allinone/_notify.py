"""The notification role: a :class:`~imsdk_server.notify.NotifyService` reached over links, and its HTTP door.

* :class:`LinkSink` is the service's :class:`~imsdk_server.notify.FrameSink`: a push goes on the link to the
  access server named by the action (the access servers dial every registered notification server, as they
  dial the routers, so that link exists once both said ready).
* :class:`NotifyLinkHandler` is the hub's frame handler. ``NOTIFY`` frames come from access servers (a
  client's ``NOTIFY/ACK``) and from business servers (``NOTIFY/NOTIFY``); each is handled in a task of its
  own so that a store write never holds up the link's reader, and the answers for a business server go back
  on the link the request came in on. An access server may only speak for itself: a frame whose
  ``access_id`` is not its peer's id is dropped and counted (``FORGED_SENDER``).
* :func:`notifications_app` is ``POST /v1/notifications`` for trusted back-ends and scripts, protected by
  the administration key of the process (``Authorization: Bearer <key>``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from starlette.requests import Request
from starlette.responses import JSONResponse

from imsdk_proto import Codec, Frame, Header
from imsdk_proto.codes import Biz, ErrorCode
from imsdk_proto.messages import ServerRole
from imsdk_server.links import Link, LinkError, LinkHub
from imsdk_server.metrics import Metrics
from imsdk_server.notify import NotificationRejected, NotifyError, NotifyService, Policy

__all__ = ["ACCESS_ROLE", "NOTIFY_ROLE", "LinkSink", "NotifyLinkHandler", "notifications_app"]

log = logging.getLogger("imsdk_server.allinone")

#: Link role of access servers, the peers pushes go to.
ACCESS_ROLE = int(ServerRole.SERVER_ROLE_ACCESS)
#: Link role a notification server's hello names.
NOTIFY_ROLE = int(ServerRole.SERVER_ROLE_NOTIFY)

#: Largest JSON body ``POST /v1/notifications`` reads.
MAX_BODY = 64 * 1024
#: Most receivers one request may name.
MAX_UIDS = 1000


class LinkSink:
    """A :class:`~imsdk_server.notify.FrameSink` over a hub: the frame goes on the link to the access server
    ``access_id``; ``False`` when there is no ready link to it (the push is lost, a stored one stays
    pending)."""

    def __init__(self, hub: LinkHub, *, role: int = ACCESS_ROLE) -> None:
        self.hub = hub
        self.role = role

    async def send_frame(self, access_id: int, header: Header, body: bytes) -> bool:
        try:
            await self.hub.send_to(self.role, access_id, Frame(header, Codec.PROTOBUF, body))
        except LinkError as exc:
            log.debug("notify: no link to access server %d: %r", access_id, exc)
            return False
        return True


class NotifyLinkHandler:
    """The notification server's link frame handler: one task per frame, answers back on the same link.

    Run :meth:`run` in a task group first (it hosts the frames' tasks); :meth:`wait_idle` returns once no
    frame is being handled (the drain of a deregistration waits for it).
    """

    def __init__(self, service: NotifyService, *, metrics: Metrics | None = None) -> None:
        self.service = service
        m = (metrics if metrics is not None else service.metrics).child("notify")
        self._m_forged = m.counter("errors_total", code=ErrorCode.FORGED_SENDER.name)
        self._m_wrong_biz = m.counter("errors_total", code=ErrorCode.NO_BACKEND.name)
        self._m_reply_lost = m.counter("replies_lost_total")
        self._m_internal = m.counter("internal_errors_total")
        self._tg: TaskGroup | None = None
        self._inflight = 0
        self._idle = anyio.Event()
        self._idle.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Host the frames' tasks until cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tg = None

    @property
    def inflight(self) -> int:
        """Frames being handled now."""
        return self._inflight

    async def wait_idle(self) -> None:
        """Wait until no frame is being handled."""
        while self._inflight:
            await self._idle.wait()

    async def on_frame(self, link: Link, frame: Frame) -> None:
        header = frame.header
        peer = link.peer
        if header.biz != Biz.NOTIFY or header.is_response:
            self._m_wrong_biz.inc()  # nothing else is routed here; a response is never answered
            return
        if peer is not None and peer.role == ACCESS_ROLE and header.access_id != peer.server_id:
            self._m_forged.inc()
            return
        if self._tg is None:  # not running (stopping): the peer resends after its link is back
            return
        self._inflight += 1
        if self._inflight == 1:
            self._idle = anyio.Event()
        self._tg.start_soon(self._handle, link, header, frame.raw_body)

    async def _handle(self, link: Link, header: Header, body: bytes) -> None:
        try:
            replies = await self.service.handle_frame(header, body)
            for reply_header, reply_body in replies:
                try:
                    await link.send(Frame(reply_header, Codec.PROTOBUF, reply_body))
                except LinkError:
                    self._m_reply_lost.inc()
        except Exception:  # one frame's bug must not take the server down
            self._m_internal.inc()
            log.exception("notify: handling a frame from %r failed", link.peer)
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._idle.set()


# -- HTTP ----------------------------------------------------------------------------------------------------


def _error(status: int, code: ErrorCode, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": int(code), "name": code.name, "message": message}}, status)


_POLICIES = {"drop": Policy.DROP, "keep_latest": Policy.KEEP_LATEST}


def _parse(body: Any) -> tuple[list[str], str, bytes, dict[str, Any]]:
    """``uids``, ``type``, ``payload`` and the options of a body; a ``ValueError`` says what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    known = {"uid", "uids", "type", "payload", "payload_b64", "merge_key", "policy", "notify_id"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    if ("uid" in body) == ("uids" in body):
        raise ValueError("give exactly one of 'uid' or 'uids'")
    uids = [body["uid"]] if "uid" in body else body["uids"]
    if not isinstance(uids, list) or not uids or not all(isinstance(u, str) and u for u in uids):
        raise ValueError("'uids' must be a non-empty list of non-empty strings")
    if len(uids) > MAX_UIDS:
        raise ValueError(f"at most {MAX_UIDS} receivers per request")
    kind = body.get("type")
    if not isinstance(kind, str):
        raise ValueError("'type' must be a string")
    if "payload" in body and "payload_b64" in body:
        raise ValueError("give at most one of 'payload' (text) or 'payload_b64'")
    payload = b""
    if "payload" in body:
        if not isinstance(body["payload"], str):
            raise ValueError("'payload' must be a string (use 'payload_b64' for bytes)")
        payload = body["payload"].encode()
    elif "payload_b64" in body:
        try:
            payload = base64.b64decode(str(body["payload_b64"]), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("'payload_b64' is not base64") from None
    options: dict[str, Any] = {}
    merge_key = body.get("merge_key", "")
    if not isinstance(merge_key, str):
        raise ValueError("'merge_key' must be a string")
    options["merge_key"] = merge_key
    if "policy" in body:
        if body["policy"] not in _POLICIES:
            raise ValueError("'policy' must be 'drop' or 'keep_latest'")
        options["policy"] = _POLICIES[body["policy"]]
    notify_id = body.get("notify_id", 0)
    if not isinstance(notify_id, int) or isinstance(notify_id, bool) or notify_id < 0:
        raise ValueError("'notify_id' must be a non-negative integer")
    options["notify_id"] = notify_id
    return list(dict.fromkeys(uids)), kind, payload, options


def notifications_app(service: NotifyService, admin_key: str) -> Any:
    """``POST /v1/notifications``: notify one user or several, as a trusted back-end.

    The request names ``uid`` (one receiver) or ``uids``, the ``type``, and optionally ``payload`` (text) or
    ``payload_b64``, ``merge_key``, ``policy`` (``drop`` / ``keep_latest``) and ``notify_id``. The answer
    is ``{"results": {uid: {"notify_id": …, "outcome": …}}}`` (``delivered`` for a discardable type handed
    to a live session, ``pushed`` for a stored type pushed and pending until a device acks it, ``stored``,
    ``dropped``, ``duplicate``, ``superseded``), or per uid ``{"error": {code, name, message}}``. Without
    the right ``Authorization: Bearer <admin key>`` the answer is 401; with no key configured the endpoint
    is off (403).
    """
    expected = admin_key.encode()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        response: JSONResponse
        if request.url.path != "/v1/notifications":
            response = _error(404, ErrorCode.NOT_FOUND, "no such endpoint")
        elif request.method != "POST":
            response = _error(405, ErrorCode.UNEXPECTED_MESSAGE, "use POST")
        elif not expected:
            response = _error(403, ErrorCode.FORBIDDEN, "no administration key is configured")
        else:
            response = await _post(request)
        await response(scope, receive, send)

    async def _post(request: Request) -> JSONResponse:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            response = _error(401, ErrorCode.TOKEN_INVALID, "a valid administration key is required")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                return _error(413, ErrorCode.PAYLOAD_TOO_LARGE, f"body larger than {MAX_BODY} bytes")
        try:
            uids, kind, payload, options = _parse(json.loads(raw))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            return _error(400, ErrorCode.MALFORMED_BODY, str(exc))
        results: dict[str, Any] = {}
        for uid in uids:
            try:
                result = await service.notify(uid, kind, payload, **options)
            except NotificationRejected as exc:
                if len(uids) == 1:
                    return _error(400, exc.code, str(exc))
                results[uid] = {"error": {"code": int(exc.code), "name": exc.code.name, "message": str(exc)}}
            except NotifyError as exc:
                if len(uids) == 1:
                    return _error(503, exc.code, str(exc))
                results[uid] = {"error": {"code": int(exc.code), "name": exc.code.name, "message": str(exc)}}
            else:
                results[uid] = {"notify_id": result.notify_id, "outcome": result.outcome.value}
                if not options["notify_id"]:
                    options["notify_id"] = result.notify_id  # one id for every receiver of this request
        return JSONResponse({"results": results})

    return app
