"""Assembling server roles in one process: every role (``imsdk serve all``) or any subset of them.

:class:`AllInOne` is an async context manager. Entering it starts the roles in dependency order, each
*registered → linked → ready*; leaving it stops them in reverse, every server going through the not-ready
drain of the lifecycle so that nothing in flight is lost:

======================  =====================================================================================
start (in this order)   what happens
======================  =====================================================================================
HTTP socket             ``--http`` is bound first, so a port in use fails before anything else starts
backends                registry and queue clients (one shared in-process hub each for ``memory``)
auth                    the auth service (users, tokens) and its revocation refresher
media                   the media upload/download service (blobs under ``<data>/media``)
location                the presence service, fed from the queue, and its access watch (a link to every
                        access server in the registry; the links' verdicts feed its jitter recognition);
                        with the ``location`` role also its link hub (presence queries and subscriptions for
                        other processes), registered ``location``
router                  the message router: listens for links, registers ``REGISTERED``, then ``READY``;
                        image and voice references checked against the media store (media role), else
                        at ``media_url`` with a token it mints (:class:`ServiceToken`), else unchecked
notify                  the notification server: listens for links, registers, follows presence, ``READY``
profile push            with the auth service, presence and a link hub in the process: profile and friend
                        changes pushed to online devices
access manager          consumes load reports, follows the registry
access server           listens on ``--tcp``, registers, dials every router and notification server in the
                        registry over a link, waits until the links are ready, goes ``READY`` and publishes a
                        first load report
HTTP                    one listener: auth, media, access manager and notification routes, ``/metrics``,
                        ``/healthz``
======================  =====================================================================================

Stopping: the access server leaves the registry, tells its clients the server is going away
(``SERVER_SHUTTING_DOWN``), sends not-ready on its links and waits for the acks; the notification server and
the router do the same on their side; then HTTP, the access manager, location and auth stop, and the
backends close.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.abc

from imsdk_proto.codes import Biz
from imsdk_proto.messages import ServerRole
from imsdk_server.allinone._config import AllInOneConfig, component_config
from imsdk_server.allinone._http import (
    ASGIApp,
    PathDispatch,
    bind_socket,
    health_app,
    metrics_app,
    serve_http,
)
from imsdk_server.backends._open import open_queue, open_registry, parse_backend_url
from imsdk_server.config import ConfigError, HostPort, parse_host_port
from imsdk_server.metrics import Metrics

if TYPE_CHECKING:
    from imsdk_server.access import AccessServer, Identity
    from imsdk_server.access_manager import AccessManager
    from imsdk_server.allinone._linked import LinkedServer
    from imsdk_server.allinone._watch import AccessWatch
    from imsdk_server.auth import AuthService, KeyRing, TokenCodec, TokenVerifier, UserStore
    from imsdk_server.backends.queue import Queue
    from imsdk_server.backends.registry import Registry, ServerInfo
    from imsdk_server.links import LinkConfig, LinkHub
    from imsdk_server.location import LocationService
    from imsdk_server.media import MediaCatalog
    from imsdk_server.notify import NotifyService
    from imsdk_server.profiles import ProfilePush

__all__ = ["ROLES", "AllInOne", "ServiceToken", "StartupError"]

log = logging.getLogger("imsdk_server.allinone")

#: Every role ``imsdk serve`` knows, in start order.
ROLES: tuple[str, ...] = ("auth", "media", "location", "router", "notify", "access-manager", "access")

_ACCESS_LINK_ROLE = int(ServerRole.SERVER_ROLE_ACCESS)
_ROUTER_LINK_ROLE = int(ServerRole.SERVER_ROLE_INSTANT_ROUTER)
_NOTIFY_LINK_ROLE = int(ServerRole.SERVER_ROLE_NOTIFY)
_LOCATION_LINK_ROLE = int(ServerRole.SERVER_ROLE_LOCATION)
_PUSH_LINK_ROLE = int(ServerRole.SERVER_ROLE_BUSINESS)
#: Registry roles of the back-ends an access server links to, with the link role their hellos name. A
#: ``push`` server (an auth process pushing profile changes) serves no business code: its link only carries
#: frames down to clients.
_BACKEND_ROLES: dict[str, int] = {
    "router": _ROUTER_LINK_ROLE,
    "notify": _NOTIFY_LINK_ROLE,
    "push": _PUSH_LINK_ROLE,
}
_LINK_WAIT = 5.0
_REDIAL_INTERVAL = 1.0
#: The device every token a server mints for itself names.
SERVICE_DEVICE = "service"


class StartupError(ConfigError):
    """A role cannot start with this configuration (e.g. no key ring to verify tokens with)."""


class ServiceToken:
    """A short-lived v2 token a server mints for itself from the deployment's key ring, kept fresh.

    Call it for the current token (the ``token=`` callable form of
    :class:`~imsdk_server.media.HttpMediaCatalog`): a new one is minted when none was yet, when the one held
    has less than ``refresh_before`` seconds left, or when ``clock`` went back before its issue time. The
    token is for ``uid`` on ``device`` and lives ``lifetime`` seconds: a leaked one is soon useless, and no
    auth server is asked (the receiving service verifies it with the same ring). ``ring`` is read at every
    mint, so a ring swapped in (the auth service's, after a rotation) signs the next token. ``clock`` is
    Unix time: tokens carry Unix seconds.
    """

    def __init__(
        self,
        ring: Callable[[], KeyRing],
        uid: str,
        device: str = SERVICE_DEVICE,
        *,
        lifetime: int = 300,
        refresh_before: int = 60,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        if not 0 <= refresh_before < lifetime:
            raise ValueError("refresh_before must be at least 0 and less than lifetime")
        self.uid = uid
        self.device = device
        self.lifetime = lifetime
        self.refresh_before = refresh_before
        self._ring = ring
        self._clock = clock
        self._codec: TokenCodec | None = None
        self._token = ""
        self._issued_at = 0
        self._expires_at = 0
        self._minted = (metrics or Metrics()).counter("service_tokens_minted_total", uid=uid)

    @property
    def expires_at(self) -> int:
        """Unix second the token held expires at (0 before the first call)."""
        return self._expires_at

    def __call__(self) -> str:
        now = self._clock()
        if self._token and self._issued_at <= now < self._expires_at - self.refresh_before:
            return self._token
        from imsdk_server.auth import TokenCodec

        ring = self._ring()
        if self._codec is None or self._codec.ring is not ring:
            self._codec = TokenCodec(ring)
        token, claims = self._codec.issue(self.uid, self.device, now=now, lifetime=self.lifetime)
        self._token, self._issued_at, self._expires_at = token, claims.issued_at, claims.expires_at
        self._minted.inc()
        return token


@dataclass
class _Task:
    name: str
    scope: anyio.CancelScope
    done: anyio.Event
    stop: Callable[[], object] | None = None


class AllInOne:
    """Some or all server roles in this process, started and stopped in order.

    ``roles`` is a subset of :data:`ROLES` (default: all). Use it as ``async with AllInOne(config) as s:``;
    :attr:`http_address` and :attr:`tcp_address` are then the bound addresses.
    """

    def __init__(
        self, config: AllInOneConfig, *, roles: Iterable[str] = ROLES, metrics: Metrics | None = None
    ) -> None:
        wanted = set(roles)
        unknown = sorted(wanted - set(ROLES))
        if unknown:
            raise ConfigError(f"unknown role(s) {', '.join(unknown)}; known: {', '.join(ROLES)}")
        if not wanted:
            raise ConfigError("no role to serve")
        self.config = config
        self.roles: tuple[str, ...] = tuple(r for r in ROLES if r in wanted)
        self.metrics = metrics if metrics is not None else Metrics()
        self.http_address: tuple[str, int] | None = None
        self.tcp_address: tuple[str, int] | None = None
        self.registry: Registry | None = None
        self.queue: Queue | None = None
        self.auth: AuthService | None = None
        self.location: LocationService | None = None
        self.access_watch: AccessWatch | None = None
        self.router: Any = None
        self.location_server: LinkedServer | None = None
        self.notify: NotifyService | None = None
        self.notify_server: LinkedServer | None = None
        self.profile_push: ProfilePush | None = None
        self.push_server: LinkedServer | None = None
        self._remote_presence: _RemotePresence | None = None
        self.access: AccessServer | None = None
        self.access_hub: LinkHub | None = None
        self.access_info: ServerInfo | None = None
        self.access_manager: AccessManager | None = None
        self.state = "stopped"
        self._stack: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._tasks: list[_Task] = []
        self._token_verifier: TokenVerifier | None = None
        self._users: UserStore | None = None
        self._media_app: ASGIApp | None = None
        self.media_catalog: MediaCatalog | None = None
        """What the router checks image and voice references against: the media store (media role), or the
        media service at ``media_url``; ``None``: not checked."""
        self.media_checked = "unchecked"
        """Where the router checks media references (``/healthz``): ``local``, the media service's base URL,
        or ``unchecked``."""
        self.service_token: ServiceToken | None = None
        """The token the router presents to the media service at ``media_url``."""
        self._router_id = 0
        self._notify_id = 0

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.state = "starting"
        stack = AsyncExitStack()
        await stack.__aenter__()
        self._stack = stack
        try:
            await self._start(stack)
        except BaseException as exc:
            self.state = "stopping"
            with anyio.CancelScope(shield=True):
                await self._stop_tasks()
            # Not shielded: the task groups on the stack must exit in the scope they were entered in.
            try:
                await stack.__aexit__(type(exc), exc, exc.__traceback__)
            except BaseExceptionGroup as group:
                if not all(leaf is exc for leaf in _leaves(group)):
                    raise
            finally:
                self._stack = None
                self.state = "stopped"
            raise
        self.state = "ready"
        log.info("serving %s (http %s, tcp %s)", ", ".join(self.roles), self.http_address, self.tcp_address)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        self.state = "stopping"
        stack = self._stack
        self._stack = None
        try:
            with anyio.CancelScope(shield=True):
                await self._stop_tasks()
        finally:
            # Not shielded: the task groups on the stack must exit in the scope they were entered in.
            if stack is not None:
                await stack.__aexit__(exc_type, exc, tb)
        self.state = "stopped"
        return None

    async def _start(self, stack: AsyncExitStack) -> None:
        cfg = self.config
        sock = bind_socket(cfg.http.host, cfg.http.port)
        stack.callback(sock.close)
        self._tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(self._tg.cancel_scope.cancel)  # runs before the task group exits
        if cfg.data is not None:
            Path(cfg.data).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - start-up only
        await self._open_backends(stack)
        if "auth" in self.roles:
            await self._start_auth(stack)
        if "media" in self.roles:
            self._start_media(stack)
        await self._allocate_ids()
        if {"location", "router", "notify"} & set(self.roles):
            await self._start_location()
        if "router" in self.roles:
            await self._start_router(stack)
        if "notify" in self.roles:
            await self._start_notify(stack)
        await self._start_profile_push()
        if "access-manager" in self.roles:
            await self._start_access_manager()
        if "access" in self.roles:
            await self._start_access(stack)
        self.http_address = await self._spawn("http", serve_http, self._http_app(), sock)

    async def _spawn(
        self,
        name: str,
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        stop: Callable[[], object] | None = None,
    ) -> Any:
        """Start ``fn(*args, task_status=…)`` in its own cancel scope; return what it reports as started."""
        assert self._tg is not None
        task = _Task(name, anyio.CancelScope(), anyio.Event(), stop)

        async def runner(*, task_status: anyio.abc.TaskStatus[Any]) -> None:
            try:
                with task.scope:
                    await fn(*args, task_status=task_status)
            finally:
                task.done.set()

        value = await self._tg.start(runner)
        self._tasks.append(task)
        return value

    async def _stop_tasks(self) -> None:
        """Stop the started tasks in reverse order, each fully before the next."""
        while self._tasks:
            task = self._tasks.pop()
            if task.name == "access":
                await self._leave_access()
            if task.stop is not None:
                with anyio.move_on_after(self.config.drain_timeout + 5.0):
                    # an orderly stop of its own (the router drains its links, the push empties its queue)
                    result = task.stop()
                    if inspect.isawaitable(result):
                        await result
                    await task.done.wait()
            task.scope.cancel()
            await task.done.wait()

    # -- backends --------------------------------------------------------------------------------------------

    async def _open_backends(self, stack: AsyncExitStack) -> None:
        cfg = self.config
        from imsdk_server.backends.queue import MemoryQueueHub
        from imsdk_server.backends.registry import MemoryRegistryHub

        self.registry = await open_registry(cfg.registry, hub=MemoryRegistryHub(), metrics=self.metrics)
        stack.push_async_callback(self.registry.aclose)
        self.queue = open_queue(cfg.queue, hub=MemoryQueueHub(metrics=self.metrics), metrics=self.metrics)
        stack.push_async_callback(self.queue.aclose)

    def _link_config(self) -> LinkConfig:
        """The ``[links]`` table: timing of every link of the process (detectors on both ends must agree)."""
        from imsdk_server.links import LinkConfig

        return component_config(self.config, LinkConfig, "links")

    def _cache_redis(self) -> tuple[str | None, str]:
        url = parse_backend_url("cache", self.config.cache)
        return (url.url, url.prefix) if url.engine == "redis" else (None, url.prefix)

    async def _user_store(self, stack: AsyncExitStack) -> UserStore | None:
        """The user store for the router's "does this uid exist": the auth service's, or the shared
        database's; ``None`` when there is no shared database (every uid then counts as known)."""
        if self.auth is not None:
            return self.auth.store
        location = self.config.database_location()
        if location == ":memory:":
            return None
        from imsdk_server.auth import SQLUserStore

        store = await SQLUserStore.open(location)
        stack.push_async_callback(store.aclose)
        return store

    def _verifier(self) -> TokenVerifier:
        """The pure v2 token verifier: the auth service's, or one over the key ring on disk."""
        if self._token_verifier is not None:
            return self._token_verifier
        from imsdk_server.auth import KeyRing, TokenVerifier

        path = self.config.key_file_path()
        if path is None or not path.exists():
            where = f"at {path}" if path is not None else "configured"
            raise StartupError(
                f"no token key ring {where}: give --key-file (the auth server's auth-keys.json) or --data"
            )
        try:
            ring = KeyRing.load(path)
        except (OSError, ValueError) as exc:
            raise StartupError(f"cannot read the key ring {path}: {exc}") from None
        self._token_verifier = TokenVerifier(ring)
        return self._token_verifier

    # -- auth ------------------------------------------------------------------------------------------------

    async def _start_auth(self, stack: AsyncExitStack) -> None:
        from imsdk_server.auth import AuthConfig, AuthService

        cfg = self.config
        redis_url, prefix = self._cache_redis()
        auth_cfg = component_config(
            cfg,
            AuthConfig,
            "auth",
            host=cfg.http.host,
            port=cfg.http.port,
            data_dir=cfg.data,
            database=cfg.database_location(),
            redis_url=redis_url,
            redis_prefix=prefix,
            key_file=cfg.key_file_path(),
        )
        self.auth = await AuthService.from_config(auth_cfg, metrics=self.metrics.child("auth"))
        stack.push_async_callback(self.auth.aclose)
        self._token_verifier = self.auth.verifier
        await self._spawn("auth", self.auth.run_background)

    # -- media -----------------------------------------------------------------------------------------------

    def _start_media(self, stack: AsyncExitStack) -> None:
        from imsdk_server.media import (
            LocalMediaCatalog,
            LocalMediaStore,
            MediaConfig,
            TokenAuth,
            create_media_app,
        )

        cfg = self.config
        root: Path | None = None
        if "root" in cfg.components.get("media", {}):
            pass  # the [media] table names the directory
        elif cfg.data is not None:
            root = Path(cfg.data) / "media"
        else:  # nothing is kept without --data: the blobs go with the process
            tmp = tempfile.TemporaryDirectory(prefix="imsdk-media-")
            stack.callback(tmp.cleanup)
            root = Path(tmp.name)
        media_cfg = component_config(cfg, MediaConfig, "media", root=root)
        media_store = LocalMediaStore(media_cfg.root)
        self._media_app = create_media_app(
            media_store, TokenAuth(self._verifier()), media_cfg, metrics=self.metrics
        )
        self.media_catalog = LocalMediaCatalog(
            media_store, sniff_bytes=media_cfg.sniff_bytes, metrics=self.metrics
        )

    # -- location and router ---------------------------------------------------------------------------------

    async def _allocate_ids(self) -> None:
        """Server ids of the router and the notification server (given, or fresh from the registry): the
        presence view of a process without the location role is named after them."""
        assert self.registry is not None
        if "router" in self.roles:
            self._router_id = self.config.router_id or await self.registry.allocate_server_id()
        if "notify" in self.roles:
            self._notify_id = self.config.notify_id or await self.registry.allocate_server_id()

    def _presence_name(self) -> str:
        """The name of this process' location service: its queue consumer group and its store's prefix.

        The ``location`` role is the presence service of the deployment (``--name`` or ``location``). A
        router or notification server without it keeps a presence view of its own, fed from the queue with
        a consumer group of its own (every process must see every event), so the name is the process'
        ``--name`` or its role and server id."""
        cfg = self.config
        if "location" in self.roles:
            return cfg.name or "location"
        if cfg.name:
            return f"{cfg.name}-presence"
        if self._router_id:
            return f"router-{self._router_id}-presence"
        return f"notify-{self._notify_id}-presence"

    async def _start_location(self) -> None:
        from imsdk_server.location import LocationConfig, LocationService, PresenceStore
        from imsdk_server.location._store import MemoryPresenceStore, RedisPresenceStore

        cfg = self.config
        name = self._presence_name()
        redis_url, prefix = self._cache_redis()
        # A Redis store goes under the cache's key prefix (one store per location server, as in the talk),
        # unless the [location] table names a prefix of its own.
        loc_cfg = component_config(
            cfg,
            LocationConfig,
            "location",
            server_id=name,
            redis_prefix=None if "redis_prefix" in cfg.components.get("location", {})
            else f"{prefix}location:{name}:",
        )  # fmt: skip
        store: PresenceStore
        if redis_url is not None:
            store = RedisPresenceStore(redis_url, prefix=loc_cfg.store_prefix)
        else:
            store = MemoryPresenceStore()
        self.location = LocationService(loc_cfg, store=store, queue=self.queue, metrics=self.metrics)
        await self._spawn("location", self.location.run)
        await self._start_access_watch(name)
        if "location" in self.roles:
            await self._start_location_links()

    async def _start_access_watch(self, name: str) -> None:
        """Links from this process' presence view to every access server, for its jitter recognition.

        Every presence view (the location role's, or a router's or notification server's own) watches the
        access servers itself: the verdicts of the links' failure detectors go to its
        ``server_status``. A link of its own hub, with a server id of its own, so that it never replaces
        another link of the process at an access server."""
        from imsdk_server.allinone._watch import AccessWatch
        from imsdk_server.links import LinkIdentity

        assert self.registry is not None
        assert self.location is not None
        watch_id = await self.registry.allocate_server_id()
        watch = AccessWatch(
            self.location.server_status,
            self.registry,
            LinkIdentity(_LOCATION_LINK_ROLE, watch_id, f"{name}-watch", self.config.domain),
            link_config=self._link_config(),
            metrics=self.metrics,
            redial_interval=_REDIAL_INTERVAL,
        )
        self.access_watch = watch
        await self._spawn("access-watch", watch.run)

    async def _start_location_links(self) -> None:
        """Presence over links for business servers in other processes (``PresenceLinkServer``)."""
        from imsdk_server.allinone._linked import LinkedServer
        from imsdk_server.links import LinkIdentity
        from imsdk_server.location import PresenceLinkServer

        cfg = self.config
        assert self.registry is not None
        assert self.location is not None
        server_id = await self.registry.allocate_server_id()
        presence = PresenceLinkServer(self.location, metrics=self.metrics.child("location"))
        server = LinkedServer(
            LinkIdentity(_LOCATION_LINK_ROLE, server_id, cfg.name or f"location-{server_id}", cfg.domain),
            "location",
            presence.on_frame,
            registry=self.registry,
            host=cfg.link_host,
            runners=(presence.run,),
            link_config=self._link_config(),
            metrics=self.metrics,
            drain_timeout=cfg.drain_timeout,
        )
        self.location_server = server
        await self._spawn("location-links", server.serve, stop=server.stop)

    async def _start_router(self, stack: AsyncExitStack) -> None:
        from imsdk_server.routing import LocationPresence, RouterConfig, RouterServer, open_message_store

        cfg = self.config
        assert self.registry is not None
        assert self.location is not None
        router_id = self._router_id
        router_cfg = component_config(cfg, RouterConfig, "router", server_id=router_id)
        self._router_media(stack, router_id)
        store = open_message_store(cfg.database_location(), metrics=self.metrics)
        stack.push_async_callback(store.aclose)
        await store.setup()
        presence = LocationPresence(self.location, users=await self._user_store(stack))
        router = RouterServer(
            router_cfg,
            store,
            presence,
            registry=self.registry,
            domain=cfg.domain,
            name=cfg.name or f"router-{router_id}",
            host=cfg.link_host,
            link_config=self._link_config(),
            metrics=self.metrics,
            drain_timeout=cfg.drain_timeout,
            media=self.media_catalog,
        )
        self.router = router
        await self._spawn("router", router.serve, stop=router.stop)

    def _router_media(self, stack: AsyncExitStack, router_id: int) -> None:
        """What the router checks media references against when the media role is not in the process: the
        media service at ``media_url``, with a token minted here; or nothing (warned once)."""
        if self.media_catalog is not None:
            self.media_checked = "local"  # the media role's store, read directly
            return
        url = self.config.media_url
        if not url:
            log.warning(
                "router %d: media references are not checked: no media role in this process and no "
                "media_url (--media); image and voice messages naming any blob are accepted",
                router_id,
            )
            return
        from imsdk_server.media import HttpMediaCatalog

        verifier = self._verifier()  # the key ring: loaded (or the auth service's) before anything starts
        self.service_token = ServiceToken(
            lambda: verifier.ring, f"router-{router_id}", metrics=self.metrics.child("router")
        )
        catalog = HttpMediaCatalog(url, token=self.service_token, metrics=self.metrics)
        stack.push_async_callback(catalog.aclose)
        self.media_catalog, self.media_checked = catalog, catalog.base_url
        log.info("router %d: media references checked at %s", router_id, catalog.base_url)

    # -- notification server and profile push ----------------------------------------------------------------

    async def _start_notify(self, stack: AsyncExitStack) -> None:
        from imsdk_server.allinone._linked import LinkedServer
        from imsdk_server.allinone._notify import LinkSink, NotifyLinkHandler
        from imsdk_server.links import LinkIdentity
        from imsdk_server.notify import NotifyConfig, NotifyService, open_notification_store

        cfg = self.config
        assert self.location is not None
        notify_id = self._notify_id
        notify_cfg = component_config(cfg, NotifyConfig, "notify")
        store = open_notification_store(cfg.database_location(), metrics=self.metrics)
        stack.push_async_callback(store.aclose)
        await store.setup()
        name = cfg.name or f"notify-{notify_id}"
        identity = LinkIdentity(_NOTIFY_LINK_ROLE, notify_id, name, cfg.domain, bizs=(int(Biz.NOTIFY),))
        # The hub comes first: the service's sink sends on it. Handler and tasks are given to it afterwards.
        server = LinkedServer(
            identity,
            "notify",
            registry=self.registry,
            host=cfg.link_host,
            link_config=self._link_config(),
            metrics=self.metrics,
            drain_timeout=cfg.drain_timeout,
        )
        service = NotifyService(
            notify_cfg,
            store=store,
            sink=LinkSink(server.hub),
            presence=self.location,
            metrics=self.metrics,
        )
        handler = NotifyLinkHandler(service)
        server.configure(
            handler=handler.on_frame,
            runners=(handler.run, functools.partial(service.run, location=self.location)),
            idle=handler.wait_idle,
        )
        self.notify, self.notify_server = service, server
        await self._spawn("notify", server.serve, stop=server.stop)

    def _push_hub(self) -> LinkHub | None:
        """A hub the access servers link to, to push profile changes on: the notification server's, else the
        router's."""
        if self.notify_server is not None:
            return self.notify_server.hub
        if self.router is not None:
            hub: LinkHub = self.router.hub
            return hub
        return None

    async def _start_profile_push(self) -> None:
        """Profile and friend changes of the auth service, pushed to online devices: needs the auth service,
        presence and a link hub to the access servers in this process."""
        if self.auth is None:
            return
        from imsdk_server.auth import AuthEvent, FriendAdded, FriendRemoved
        from imsdk_server.profiles import LinkDownstream, LocalPresence, PresenceLookup, ProfilePush

        hub = self._push_hub()
        presence: PresenceLookup
        if self.location is not None and hub is not None:
            presence = LocalPresence(self.location)
        else:  # an auth process of a cluster: presence from the location server, links from access servers
            hub, presence = await self._start_push_server()
        push = ProfilePush(presence, LinkDownstream(hub), metrics=self.metrics)

        async def on_friend_event(event: AuthEvent) -> None:
            if isinstance(event, FriendAdded):
                push.friend_changed("added", event.uid, event.friend, event.at)
            elif isinstance(event, FriendRemoved):
                push.friend_changed("removed", event.uid, event.friend, event.at)

        detach = (push.attach(self.auth.events), self.auth.events.subscribe(on_friend_event))

        async def stop() -> None:
            for fn in detach:
                fn()
            await push.aclose()  # run() returns once the queued changes are pushed

        self.profile_push = push
        await self._spawn("profile-push", push.run, stop=stop)

    async def _start_push_server(self) -> tuple[LinkHub, _RemotePresence]:
        """A link hub registered as ``push`` (access servers link to it, so pushes reach their clients) and
        a presence client on a link to a registered location server, dialled again whenever it is lost."""
        from imsdk_server.allinone._linked import LinkedServer
        from imsdk_server.links import LinkIdentity

        cfg = self.config
        assert self.registry is not None
        server_id = await self.registry.allocate_server_id()
        remote = _RemotePresence()
        server = LinkedServer(
            LinkIdentity(_PUSH_LINK_ROLE, server_id, cfg.name or f"push-{server_id}", cfg.domain),
            "push",
            remote.on_frame,
            registry=self.registry,
            host=cfg.link_host,
            link_config=self._link_config(),
            metrics=self.metrics,
            drain_timeout=cfg.drain_timeout,
        )
        # The follower dials from the server's own hub: access servers' links and the location link share it.
        server.configure(runners=(functools.partial(self._follow_location, server.hub, remote),))
        self.push_server, self._remote_presence = server, remote
        await self._spawn("push-links", server.serve, stop=server.stop)
        return server.hub, remote

    async def _follow_location(
        self, hub: LinkHub, remote: _RemotePresence, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        """Keep one link to a ready location server of the domain, with a presence client on it."""
        from imsdk_server.backends.registry import RegistryError, ServerState
        from imsdk_server.links import LinkError
        from imsdk_server.location import PresenceClient

        assert self.registry is not None
        task_status.started()
        while True:
            try:
                peers = await self.registry.list_servers(self.config.domain, "location")
            except RegistryError as exc:
                log.warning("profile push: registry look-up of location servers failed: %r", exc)
                peers = ()
            for peer in (p for p in peers if p.state is ServerState.READY):
                try:
                    link = await hub.connect(peer.host, peer.port, expect_server_id=peer.server_id)
                    with anyio.fail_after(_LINK_WAIT):
                        await link.wait_ready()
                except (OSError, LinkError, TimeoutError) as exc:
                    log.warning("profile push: cannot link to location server %d: %r", peer.server_id, exc)
                    continue
                async with PresenceClient(link, name=f"profile-push-{hub.identity.server_id}") as client:
                    remote.client = client
                    try:
                        await link.wait_closed()
                    finally:
                        remote.client = None
                break
            await anyio.sleep(_REDIAL_INTERVAL)

    # -- access server ---------------------------------------------------------------------------------------

    async def _start_access(self, stack: AsyncExitStack) -> None:
        from imsdk_server.access import (
            AccessConfig,
            AccessServer,
            LinkRoutes,
            LocalTokenVerifier,
            RemoteTokenVerifier,
            RoutingTable,
            TokenRouter,
        )
        from imsdk_server.access import TokenVerifier as AccessTokenVerifier
        from imsdk_server.backends.registry import ServerInfo
        from imsdk_server.links import LinkHub, LinkIdentity

        cfg = self.config
        assert self.registry is not None
        access_id = cfg.access_id or await self.registry.allocate_server_id()
        access_cfg = component_config(
            cfg,
            AccessConfig,
            "access",
            server_id=access_id,
            host=cfg.tcp.host,
            port=cfg.tcp.port,
            region=cfg.region or None,
            isp=cfg.isp or None,
            advertised_address=cfg.advertised or None,
        )
        v1: AccessTokenVerifier
        if self.auth is not None:
            v1 = _ServiceVerifier(self.auth)
        else:
            remote = RemoteTokenVerifier(cfg.auth_url())
            stack.push_async_callback(remote.aclose)
            v1 = remote
        verifier = TokenRouter(v2=LocalTokenVerifier(self._verifier()), v1=v1)
        routes = RoutingTable()
        server = AccessServer(access_cfg, verifier, routes=routes, queue=self.queue, metrics=self.metrics)
        self.access = server
        try:
            host, port = await self._spawn("access", server.serve)
        except OSError as exc:
            reason = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
            raise OSError(exc.errno, f"cannot listen on {cfg.tcp}: {reason}") from None
        self.tcp_address = (host, port)
        if not access_cfg.advertised_address:
            shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            access_cfg.advertised_address = str(HostPort(shown, port))
        name = cfg.name or f"access-{access_id}"
        hub = LinkHub(
            LinkIdentity(_ACCESS_LINK_ROLE, access_id, name, cfg.domain),
            config=self._link_config(),
            handler=server.on_link_frame,
            on_state=LinkRoutes(routes).on_state,
            metrics=self.metrics,
        )
        self.access_hub = await stack.enter_async_context(hub)
        link_host, link_port = await hub.listen(cfg.link_host, 0)
        client = parse_host_port(access_cfg.advertised_address)
        info = ServerInfo(
            role="access",
            server_id=access_id,
            name=name,
            domain=cfg.domain,
            host=link_host,
            port=link_port,
            client_host=client.host,
            client_port=client.port,
            region=access_cfg.region,
            isp=access_cfg.isp,
        )
        await self.registry.register(info)
        self.access_info = info
        # Link to every back-end registered now before saying ready, then follow the registry.
        for role in _BACKEND_ROLES:
            for peer in await self.registry.list_servers(cfg.domain, role):
                await self._dial(role, peer, wait=True)
        await self._spawn("access-links", self._follow_backends)
        from imsdk_server.backends.registry import ServerState

        self.access_info = await self.registry.set_state(info.key, ServerState.READY)
        # A first load report at once, so that the access manager offers this server without waiting for
        # the periodic one.
        if self.queue is not None:
            report = server.load_report(anyio.current_time(), 0.0)
            with anyio.move_on_after(_LINK_WAIT):
                await self.queue.publish(access_cfg.load_topic, report.SerializeToString())

    async def _dial(self, role: str, peer: ServerInfo, *, wait: bool = False) -> None:
        from imsdk_server.backends.registry import ServerState

        hub = self.access_hub
        if hub is None or peer.state is ServerState.NOT_READY:
            return
        if hub.link_to(_BACKEND_ROLES[role], peer.server_id) is not None:
            return
        try:
            link = await hub.connect(peer.host, peer.port, expect_server_id=peer.server_id)
        except OSError as exc:
            log.warning("cannot link to %s %d at %s:%d: %s", role, peer.server_id, peer.host, peer.port, exc)
            return
        if wait:
            with anyio.move_on_after(_LINK_WAIT):
                await link.wait_ready()

    async def _follow_backends(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Keep a link to every registered back-end: dial new ones, redial lost ones while registered."""
        from imsdk_server.backends.registry import RegistryError

        assert self.registry is not None
        registry = self.registry
        latest: dict[str, tuple[ServerInfo, ...]] = {}
        changed = anyio.Event()

        async def watch(role: str) -> None:
            nonlocal changed
            while True:
                try:
                    async with registry.watch_servers(self.config.domain, role) as snapshots:
                        async for snapshot in snapshots:
                            latest[role] = snapshot
                            changed.set()
                except RegistryError as exc:
                    log.warning("registry watch of %s failed: %r", role, exc)
                await anyio.sleep(_REDIAL_INTERVAL)

        async with anyio.create_task_group() as tg:
            for role in _BACKEND_ROLES:
                tg.start_soon(watch, role)
            task_status.started()
            while True:
                with anyio.move_on_after(_REDIAL_INTERVAL):
                    await changed.wait()
                changed = anyio.Event()
                for role, peers in list(latest.items()):
                    for peer in peers:
                        await self._dial(role, peer)

    async def _leave_access(self) -> None:
        """The access server's half of the lifecycle: leave the registry, send clients away, drain links."""
        from imsdk_server.backends.registry import RegistryError, ServerState

        registry, info = self.registry, self.access_info
        if registry is not None and info is not None:
            try:
                with anyio.move_on_after(self.config.drain_timeout):
                    await registry.set_state(info.key, ServerState.NOT_READY)
                    await registry.deregister(info.key)
            except RegistryError as exc:
                log.warning("access server: leaving the registry failed: %r", exc)
            self.access_info = None
        if self.access is not None:
            self.access.shutdown_connections()
        for task in self._tasks:
            if task.name == "access-links":
                task.scope.cancel()
        if self.access_hub is not None:
            report = await self.access_hub.deregister(drain_timeout=self.config.drain_timeout)
            log.info("access server drained: %s", report)

    # -- access manager --------------------------------------------------------------------------------------

    async def _start_access_manager(self) -> None:
        from imsdk_server.access_manager import AccessManager, AccessManagerConfig, LocalBearerVerifier

        cfg = self.config
        assert self.queue is not None
        am_cfg = component_config(
            cfg,
            AccessManagerConfig,
            "access_manager",
            host=cfg.http.host,
            port=cfg.http.port,
            domain=cfg.domain,
        )
        self.access_manager = AccessManager(
            am_cfg,
            queue=self.queue,
            verifier=LocalBearerVerifier(self._verifier()),
            registry=self.registry,
            metrics=self.metrics,
        )
        await self._spawn("access-manager", self.access_manager.run)

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _http_app(self) -> ASGIApp:
        routes: dict[str, ASGIApp] = {
            "/metrics": metrics_app(self.metrics),
            "/healthz": health_app(self.health),
        }
        default: ASGIApp = _not_found
        if self.auth is not None:
            from imsdk_server.auth import create_auth_app

            default = create_auth_app(self.auth)
        if self._media_app is not None:
            routes["/v1/media"] = self._media_app
        if self.notify is not None:
            from imsdk_server.allinone._notify import notifications_app

            routes["/v1/notifications"] = notifications_app(self.notify, self.config.admin_key)
        if self.access_manager is not None:
            from imsdk_server.access_manager import create_access_manager_app

            am_app = create_access_manager_app(self.access_manager)
            routes["/v1/access-points"] = am_app
            routes["/v1/access-servers"] = am_app
        return PathDispatch(routes, default)

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` answers: ``status`` (``ok`` once every role is ready), roles, a few figures."""
        body: dict[str, Any] = {
            "status": "ok" if self.state == "ready" else self.state,
            "roles": list(self.roles),
            "time": time.time(),
        }
        if self.access is not None:
            body["access"] = {
                "server_id": self.access.config.server_id,
                "connections": self.access.connection_count,
                "address": str(HostPort(*self.tcp_address)) if self.tcp_address else None,
                "links_ready": len(self.access_hub.ready_links()) if self.access_hub is not None else 0,
            }
        if self.router is not None:
            body["router"] = {"server_id": self.router.config.server_id, "media": self.media_checked}
        if self.notify_server is not None:
            body["notify"] = {
                "server_id": self.notify_server.identity.server_id,
                "links_ready": len(self.notify_server.hub.ready_links()),
            }
        if self.profile_push is not None:
            remote = self._remote_presence
            body["profile_push"] = {"presence": remote is None or remote.client is not None}
        if self.access_watch is not None:
            body["access_watch"] = {"linked": self.access_watch.linked()}
        if self.location_server is not None:
            body["location"] = {
                "server_id": self.location_server.identity.server_id,
                "links_ready": len(self.location_server.hub.ready_links()),
            }
        return body


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


class _RemotePresence:
    """The profile push's presence when the location server is another process: the presence client of the
    current link to it (``PresenceUnavailable`` while there is none: the push is counted as a presence
    error and friends read the profile on their next read)."""

    def __init__(self) -> None:
        self.client: Any = None

    async def query(self, uids: Iterable[str]) -> Any:
        from imsdk_server.location import PresenceUnavailable

        client = self.client
        if client is None:
            raise PresenceUnavailable("no link to a location server")
        return await client.query(uids)

    async def on_frame(self, link: Any, frame: Any) -> None:
        """The push hub's frame handler: presence answers go to the client; nothing else is expected."""
        client = self.client
        if client is not None:
            await client.on_frame(link, frame)


class _ServiceVerifier:
    """v1 (opaque) tokens checked by the auth service in this process, without an HTTP round trip."""

    def __init__(self, service: AuthService) -> None:
        self._service = service

    async def verify(self, token: str, device: str) -> Identity:
        from imsdk_server.access import AuthenticationFailed, AuthUnavailable, Identity
        from imsdk_server.auth import AuthError, ServiceUnavailable

        try:
            claims, _ = await self._service.verify(token, device=device)
        except ServiceUnavailable:
            raise AuthUnavailable("token store unavailable") from None
        except AuthError as exc:
            raise AuthenticationFailed("token refused", exc.code) from None
        return Identity(claims.uid, claims.device, float(claims.expires_at))


async def _not_found(scope: Any, receive: Any, send: Any) -> None:
    from starlette.responses import JSONResponse

    from imsdk_proto.codes import ErrorCode

    body = {"error": {"code": int(ErrorCode.NOT_FOUND), "message": "no such endpoint"}}
    await JSONResponse(body, 404)(scope, receive, send)
