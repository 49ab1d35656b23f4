"""The public client: ``async with Client(server_url, uid, password=…) as client:``.

Entering the client logs in over HTTP (:class:`~imsdk_client.AuthClient`), asks the access manager for access
points (usually three), races them, sends the handshake to the fastest, catches up on what was stored while
the device was away, and returns once the session is ready. From then on the session core
(:mod:`imsdk_client._core.session`) and its anyio driver (:mod:`imsdk_client._drivers.connection`) keep the
connection alive: heartbeats, reconnects with back-off, network switches, token refreshes, resends.

Sending returns after the server's acknowledgement (or raises a typed error); receiving is one async iterator
of events. Runs on asyncio and trio.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
import httpx

from imsdk_client._auth import AuthClient, ProfileInfo, TokenInfo
from imsdk_client._core.events import (
    ChatContent,
    ConnectionState,
    Event,
    Network,
    SendAcked,
    SendFailed,
    StateChanged,
)
from imsdk_client._core.race import Endpoint
from imsdk_client._core.session import Session, SessionConfig
from imsdk_client._drivers.connection import SessionDriver, TokenGrant
from imsdk_client._drivers.race import Connector
from imsdk_client._errors import (
    BadResponse,
    ClientClosed,
    ConnectTimeout,
    IMClientError,
    InvalidContent,
    ReceiverOffline,
    TransportError,
    error_from_response,
    send_error,
)
from imsdk_proto.codes import ErrorCode
from imsdk_proto.messages import (
    ChatImage,
    ChatLocation,
    ChatText,
    ChatVoice,
    MediaRef,
    Platform,
    SendStatus,
)

__all__ = ["PLATFORMS", "Client", "MediaInfo", "Sending", "check_location"]

#: Platform names the client accepts, with their wire numbers.
PLATFORMS: dict[str, int] = {
    "": Platform.PLATFORM_UNSPECIFIED,
    "android": Platform.PLATFORM_ANDROID,
    "ios": Platform.PLATFORM_IOS,
    "web": Platform.PLATFORM_WEB,
    "desktop": Platform.PLATFORM_DESKTOP,
    "server": Platform.PLATFORM_SERVER,
}
_MAX_LABEL = 256
_MAX_TEXT = 4096


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What the media service answered for an upload."""

    id: str
    """The lowercase hex SHA-256 of the bytes: the blob's only name."""
    kind: str
    mime: str
    size: int
    width: int = 0
    height: int = 0

    def ref(self) -> MediaRef:
        """The reference a chat message carries."""
        return MediaRef(
            sha256=bytes.fromhex(self.id),
            mime=self.mime,
            size=self.size,
            width=self.width,
            height=self.height,
        )


class _Waiter:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: SendAcked | None = None
        self.error: IMClientError | None = None


class Sending:
    """A message on its way (see :meth:`Client.post`): :attr:`msg_id` now, the server's answer later."""

    def __init__(self, msg_id: int, waiter: _Waiter) -> None:
        self.msg_id = msg_id
        """The client message id; every resend of this message carries it."""
        self._waiter = waiter

    @property
    def done(self) -> bool:
        return self._waiter.done.is_set()

    async def wait(self) -> SendAcked:
        """The server's acknowledgement (server id, conversation sequence, status), or the typed error.

        Cancelling the wait does not withdraw the message: it stays in the outbox and is still sent.
        """
        waiter = self._waiter
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.result is not None
        return waiter.result


class Client:
    """One user's device, connected.

    ``server_url`` is the HTTP base URL of the auth server and the access manager (and, unless
    ``media_url`` says otherwise, of the media service). ``network`` is the network the device is on now
    (``wifi``, ``5g``, ``4g``, ``3g``, ``2g`` or ``none``); tell the client when it changes with
    :meth:`set_network`. ``config`` tunes the session (timeouts, heartbeat, back-off, reordering); its
    ``device_id`` and ``platform`` are taken from ``device`` and ``platform``. ``endpoints`` skips the
    access manager (a fixed list of access points). ``http_transport`` replaces httpx's network transport
    (``imsdk_client.testing`` hands one out). ``connector`` opens the socket to one access point (TCP by
    default; a TLS connector wraps it). ``linger`` bounds how long closing waits for the receipts of what
    arrived (cumulative acks about to go out) and for queued bytes.

    Errors: entering raises ``InvalidCredentials`` for a wrong password, ``TransportError`` when the servers
    cannot be reached, ``ConnectTimeout`` when no session is ready within ``ready_timeout`` seconds.
    """

    def __init__(
        self,
        server_url: str,
        uid: str,
        *,
        password: str,
        device: str = "default",
        platform: str = "",
        network: Network | str = Network.WIFI,
        client_version: str = "",
        region: str = "",
        isp: str = "",
        media_url: str | None = None,
        endpoints: Sequence[Endpoint] | None = None,
        config: SessionConfig | None = None,
        ready_timeout: float = 30.0,
        linger: float = 1.0,
        http_timeout: float = 10.0,
        http_transport: httpx.AsyncBaseTransport | None = None,
        connector: Connector | None = None,
    ) -> None:
        if not uid:
            raise ValueError("uid is required")
        if not device:
            raise ValueError("device is required")
        platform_key = platform.strip().lower()
        if platform_key not in PLATFORMS:
            raise ValueError(
                f"unknown platform {platform!r} (expected one of {', '.join(p for p in PLATFORMS if p)})"
            )
        self.server_url = server_url.rstrip("/")
        self.media_url = (media_url or server_url).rstrip("/")
        self.uid = uid
        self.device = device
        self.platform = platform_key
        self.region = region
        self.isp = isp
        self.client_version = client_version
        self._password = password
        self._fixed_endpoints = tuple(endpoints) if endpoints else ()
        self._ready_timeout = ready_timeout
        self.linger = linger
        """On close, how long acknowledgements about to go out and queued bytes may take to leave."""
        base = config if config is not None else SessionConfig(device_id=device)
        self.config = dataclasses.replace(
            base,
            device_id=device,
            platform=PLATFORMS[platform_key],
            client_version=client_version or base.client_version,
            region=region or base.region,
            isp=isp or base.isp,
        )
        self.session = Session(self.config, network=network)
        self._http = httpx.AsyncClient(
            base_url=self.server_url, timeout=http_timeout, transport=http_transport
        )
        self.auth = AuthClient(self.server_url, http=self._http)
        self._connector = connector
        self._driver: SessionDriver | None = None
        self._stack: AsyncExitStack | None = None
        self._events: deque[Event] = deque()
        self._events_wake: anyio.Event | None = None
        self._waiters: dict[int, _Waiter] = {}
        self._progress = anyio.Event()
        self._ended = False
        self._session_token = ""
        self._last_reason = ""
        self._end_code: ErrorCode | None = None
        self._closed = False

    # ------------------------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Client:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            stack.push_async_callback(self._http.aclose)
            token = await self.auth.login(
                self.uid,
                self._password,
                self.device,
                platform=self.platform,
                client_version=self.client_version,
                region=self.region,
                isp=self.isp,
            )
            endpoints = self._fixed_endpoints or tuple(await self.access_points())
            driver = SessionDriver(
                self.session,
                fetch_endpoints=self.access_points,
                refresh_token=self._refresh_token,
                on_event=self._on_event,
                connector=self._connector,
            )
            self._driver = await stack.enter_async_context(driver)
            now = driver.now()
            driver.apply(
                self.session.start(
                    now, token=token.token, token_expires_at=now + _remaining(token), endpoints=endpoints
                )
            )
            self._session_token = token.token
            with anyio.move_on_after(self._ready_timeout):
                await self.wait_ready()
            if self.session.state is not ConnectionState.READY:
                raise ConnectTimeout(
                    f"no session within {self._ready_timeout:g} s (last: {self._last_reason or 'nothing'})"
                )
        except BaseException:
            self._closed = True
            if self._driver is not None:
                self._driver.apply(self.session.close(self._driver.now()))
            self._wake_events()
            # Not shielded: the driver's task group must exit in the scope it was entered in.
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection: unanswered sends raise :class:`ClientClosed`; :meth:`events` ends once the
        events received so far are read."""
        if self._closed:
            return
        self._closed = True
        driver = self._driver
        if driver is not None and not self._ended:
            await driver.close_gracefully(self.linger)
        self._wake_events()
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()  # not shielded: the driver's task group exits in the scope it was entered in

    @property
    def state(self) -> ConnectionState:
        """Where the connection stands now."""
        return self.session.state

    @property
    def network(self) -> Network:
        return self.session.network

    @property
    def endpoint(self) -> Endpoint | None:
        """The access point of the current connection (``None`` between connections)."""
        return self.session.endpoint

    @property
    def token(self) -> TokenInfo | None:
        return self.auth.token

    def _require(self) -> SessionDriver:
        if self._closed or self._ended or self._driver is None:
            raise ClientClosed("the client is closed", code=self._end_code)
        return self._driver

    # ------------------------------------------------------------------------------------------ events

    def _on_event(self, event: Event) -> None:
        if isinstance(event, StateChanged):
            self._last_reason = event.reason
            if event.new is ConnectionState.CLOSED:
                self._end_code = event.code
                self._ended = True
            if event.new in (ConnectionState.READY, ConnectionState.CLOSED):
                self._progress.set()
        elif isinstance(event, SendAcked):
            waiter = self._waiters.pop(event.msg_id, None)
            if waiter is not None:
                if event.status == SendStatus.SEND_STATUS_DROPPED:
                    waiter.error = ReceiverOffline(
                        f"message {event.msg_id:#x} dropped: the receiver is offline", msg_id=event.msg_id
                    )
                else:
                    waiter.result = event
                waiter.done.set()
        elif isinstance(event, SendFailed):
            waiter = self._waiters.pop(event.msg_id, None)
            if waiter is not None:
                if event.code is None:
                    waiter.error = ClientClosed(
                        f"message {event.msg_id:#x} got no answer: {event.message or 'the client closed'}",
                        code=self._end_code,
                    )
                else:
                    waiter.error = send_error(event.msg_id, event.code, event.message)
                waiter.done.set()
        self._events.append(event)
        self._wake_events()

    def _wake_events(self) -> None:
        if self._events_wake is not None:
            self._events_wake.set()
            self._events_wake = None

    async def events(self) -> AsyncIterator[Event]:
        """Every event, in order: messages (reordered by sequence, each once), receipts, notifications,
        presence and profile updates of friends, state and network changes, send results.

        Events are kept until read, so an app should keep reading. The iterator ends when the client is
        closed and every event received before is read.
        """
        while True:
            while self._events:
                yield self._events.popleft()
            if self._closed or self._ended:
                return
            wake = self._events_wake = anyio.Event()
            await wake.wait()

    async def wait_ready(self) -> None:
        """Wait until the session is ready (connected and caught up); raises ``ClientClosed`` if it ends."""
        while self.session.state is not ConnectionState.READY:
            if self._closed or self._ended:
                reason = f": {self._last_reason}" if self._last_reason else ""
                raise ClientClosed(f"the session ended{reason}", code=self._end_code)
            self._progress = anyio.Event()
            await self._progress.wait()

    # ------------------------------------------------------------------------------------------ sending

    async def send_text(self, to: str, text: str, *, instant: bool = False) -> SendAcked:
        """Send a text; returns the server's acknowledgement (server id, conversation sequence, status).

        ``instant=True`` sends it in the instant class: not stored, and :class:`ReceiverOffline` when no
        device of ``to`` is online. Offline-class messages (the default) are stored for an offline receiver.
        """
        return await self.post_text(to, text, instant=instant).wait()

    def post_text(self, to: str, text: str, *, instant: bool = False) -> Sending:
        """Queue a text without waiting (see :meth:`post`)."""
        if not text:
            raise InvalidContent("a text message needs text")
        if len(text) > _MAX_TEXT:
            raise InvalidContent(
                f"a text is at most {_MAX_TEXT} characters", code=ErrorCode.PAYLOAD_TOO_LARGE
            )
        return self.post(to, ChatText(text=text), instant=instant)

    async def send_image(
        self, to: str, data: bytes, *, caption: str = "", instant: bool = False
    ) -> SendAcked:
        """Upload an image (JPEG, PNG, GIF or WebP) to the media service and send a reference to it."""
        info = await self.upload_media(data, "image")
        return await self._send(ChatImage(image=info.ref(), caption=caption), to, instant)

    async def send_voice(self, to: str, data: bytes, *, duration_ms: int, instant: bool = False) -> SendAcked:
        """Upload a voice clip (AMR, Opus, AAC, M4A or WAV) and send a reference with its duration."""
        if not 0 < duration_ms <= 0xFFFF_FFFF:
            raise InvalidContent(f"a voice clip needs a positive duration, not {duration_ms} ms")
        info = await self.upload_media(data, "voice")
        return await self._send(ChatVoice(voice=info.ref(), duration_ms=duration_ms), to, instant)

    async def send_location(
        self,
        to: str,
        lat: float,
        lng: float,
        *,
        accuracy_m: float = 0.0,
        label: str = "",
        instant: bool = False,
    ) -> SendAcked:
        """Send a location: ``lat`` in [-90, 90], ``lng`` in [-180, 180], ``accuracy_m`` ≥ 0."""
        check_location(lat, lng, accuracy_m, label)
        content = ChatLocation(lat=lat, lng=lng, accuracy_m=accuracy_m, label=label)
        return await self._send(content, to, instant)

    async def _send(self, content: ChatContent, to: str, instant: bool) -> SendAcked:
        return await self.post(to, content, instant=instant).wait()

    def post(self, to: str, content: ChatContent, *, instant: bool = False) -> Sending:
        """Queue a message without waiting: it takes its place in the send order at once (and in the outbox,
        so it survives reconnects). ``await handle.wait()`` returns the acknowledgement or raises.

        ``content`` is a ``ChatText``, ``ChatImage``, ``ChatVoice`` or ``ChatLocation`` (media already
        uploaded: see :meth:`upload_media`). The ``send_*`` methods are this plus the checks and uploads.
        """
        driver = self._require()
        if not to:
            raise InvalidContent("a message needs a receiver")
        if isinstance(content, ChatLocation):
            check_location(content.lat, content.lng, content.accuracy_m, content.label)
        msg_id, actions = self.session.send_message(content, to, driver.now(), instant=instant)
        waiter = self._waiters[msg_id] = _Waiter()
        driver.apply(actions)
        return Sending(msg_id, waiter)

    def mark_read(self, peer_uid: str, up_to_conv_seq: int, server_msg_ids: Iterable[int] = ()) -> None:
        """Tell ``peer_uid`` that their messages up to ``up_to_conv_seq`` were read (a read receipt)."""
        driver = self._require()
        driver.apply(
            self.session.send_receipt("read", peer_uid, server_msg_ids, up_to_conv_seq, driver.now())
        )

    def mark_delivered(self, peer_uid: str, up_to_conv_seq: int, server_msg_ids: Iterable[int] = ()) -> None:
        """Tell ``peer_uid`` that their messages up to ``up_to_conv_seq`` reached this device."""
        driver = self._require()
        driver.apply(
            self.session.send_receipt("delivered", peer_uid, server_msg_ids, up_to_conv_seq, driver.now())
        )

    def set_network(self, network: Network | str) -> None:
        """The device's network changed (``wifi``, ``5g``, ``4g``, ``3g``, ``2g`` or ``none``).

        On a switch between two networks the old socket is likely dead: the client reconnects at once (to
        the same access server first), resumes, and resends every unacknowledged message with its original
        id, so the server stores none twice. ``none`` stops reconnect attempts until a network is back.
        """
        driver = self._require()
        driver.apply(self.session.network_changed(network, driver.now()))

    # ------------------------------------------------------------------------------------------ HTTP

    async def access_points(self) -> list[Endpoint]:
        """A fresh list of access points from the access manager (``GET /v1/access-points``)."""
        if self._fixed_endpoints:
            return list(self._fixed_endpoints)
        token = await self.auth.valid_token()
        params = {k: v for k, v in (("region", self.region), ("isp", self.isp)) if v}
        body = await self._call("GET", f"{self.server_url}/v1/access-points", token, params=params)
        try:
            points = body["access_points"]
            return [
                Endpoint(
                    str(p["host"]),
                    int(p["port"]),
                    int(p.get("server_id", 0)),
                    str(p.get("region", "")),
                    str(p.get("isp", "")),
                )
                for p in points
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise BadResponse(f"malformed access-point list: {exc!r}") from exc

    async def upload_media(self, data: bytes, kind: str) -> MediaInfo:
        """Upload ``data`` (``kind`` ``"image"`` or ``"voice"``) to the media service."""
        if kind not in ("image", "voice"):
            raise ValueError(f"kind is 'image' or 'voice', not {kind!r}")
        if not data:
            raise InvalidContent(f"an empty {kind}")
        token = await self.auth.valid_token()
        body = await self._call(
            "POST", f"{self.media_url}/v1/media", token, params={"kind": kind}, content=bytes(data)
        )
        try:
            info = MediaInfo(
                str(body["id"]),
                str(body["kind"]),
                str(body["mime"]),
                int(body["size"]),
                int(body.get("width") or 0),
                int(body.get("height") or 0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadResponse(f"malformed upload answer: {exc!r}") from exc
        if info.id != hashlib.sha256(data).hexdigest() or info.size != len(data):
            raise BadResponse("the media service answered for other bytes than those uploaded")
        return info

    async def download_media(self, media: MediaRef | str) -> bytes:
        """The bytes of a blob (a message's ``MediaRef`` or its hex id)."""
        media_id = media if isinstance(media, str) else media.sha256.hex()
        token = await self.auth.valid_token()
        try:
            response = await self._http.get(
                f"{self.media_url}/v1/media/{media_id}", headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.TransportError as exc:
            raise TransportError(f"GET media: {exc!r}") from exc
        if response.status_code >= 400:
            raise _media_error(response)
        return response.content

    async def _call(
        self,
        method: str,
        url: str,
        token: str,
        *,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> Any:
        try:
            response = await self._http.request(
                method, url, params=params, content=content, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.TransportError as exc:
            raise TransportError(f"{method} {url}: {exc!r}") from exc
        if response.status_code >= 400:
            raise _media_error(response)
        try:
            return response.json()
        except ValueError as exc:
            raise BadResponse(f"{method} {url}: the answer is not JSON") from exc

    async def _refresh_token(self) -> TokenGrant:
        """The core asks for a fresh token: refreshed when due, else (the old one was refused) a new login."""
        token = await self.auth.valid_token()
        info = self.auth.token
        if info is None or token == self._session_token:
            info = await self.auth.login(
                self.uid,
                self._password,
                self.device,
                platform=self.platform,
                client_version=self.client_version,
                region=self.region,
                isp=self.isp,
            )
        self._session_token = info.token
        return TokenGrant(info.token, _remaining(info))

    # ------------------------------------------------------------------------------------------ friends

    async def friends(self) -> list[str]:
        """The uids of this user's friends."""
        return await self.auth.friends()

    async def add_friend(self, uid: str) -> bool:
        """Become friends with ``uid``; ``False`` if already friends."""
        return await self.auth.add_friend(uid)

    async def remove_friend(self, uid: str) -> bool:
        """End the friendship with ``uid``; ``False`` if there was none."""
        return await self.auth.remove_friend(uid)

    async def profile(self, uid: str | None = None) -> ProfileInfo:
        """This user's profile, or ``uid``'s."""
        return await self.auth.profile(uid)

    async def update_profile(
        self, *, nickname: str | None = None, signature: str | None = None, avatar: str | None = None
    ) -> ProfileInfo:
        """Change this user's profile; online friends hear of it at once."""
        return await self.auth.update_profile(nickname=nickname, signature=signature, avatar=avatar)


def check_location(lat: float, lng: float, accuracy_m: float = 0.0, label: str = "") -> None:
    """Raise :class:`InvalidContent` unless this is a place on Earth with a sane accuracy and label."""
    for name, value in (("lat", lat), ("lng", lng), ("accuracy_m", accuracy_m)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidContent(f"{name} must be a finite number, not {value!r}")
    if not -90.0 <= lat <= 90.0:
        raise InvalidContent(f"lat {lat} is outside [-90, 90]")
    if not -180.0 <= lng <= 180.0:
        raise InvalidContent(f"lng {lng} is outside [-180, 180]")
    if accuracy_m < 0:
        raise InvalidContent(f"accuracy_m {accuracy_m} is negative")
    if len(label) > _MAX_LABEL:
        raise InvalidContent(f"a label is at most {_MAX_LABEL} characters", code=ErrorCode.PAYLOAD_TOO_LARGE)


def _remaining(token: TokenInfo) -> float:
    """Seconds the token stays valid from now (on the client's wall clock, as the token arrived)."""
    return token.local_expiry() - time.time()


def _media_error(response: httpx.Response) -> IMClientError:
    """The typed error of an HTTP error answer, in either error shape the services use."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), int):
        body = {"error": {"code": body["code"], "message": str(body.get("message", ""))}}
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return error_from_response(
            response.status_code, {"error": {"message": f"HTTP {response.status_code}"}}
        )
    return error_from_response(response.status_code, body, response.headers.get("retry-after"))
