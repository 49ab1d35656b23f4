"""The ZooKeeper registry, through kazoo.

Layout (see docs/registry.md): ``<root>/domains/<domain>/servers/<role>/<id>`` ephemeral JSON entries,
``<root>/config/<key>`` parameters, ``<root>/ids`` the server-id counter.

Threading rules, because kazoo is thread-based and anyio is not:

* every kazoo call runs in a worker thread (:func:`anyio.to_thread.run_sync`) with a timeout, never on the
  event-loop thread;
* kazoo's watch callbacks and connection listener only flip flags and hop to the loop (with the loop's token)
  to wake watches; the connection listener never blocks kazoo's connection thread (it hands the hop and the
  re-creation of ephemeral entries to a separate thread, which retries with backoff until it succeeds, the
  connection changes again or the registry closes).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from imsdk_server.backends.registry._base import (
    MAX_SERVER_ID,
    AlreadyRegistered,
    ConfigWatch,
    InvalidRegistryData,
    NotRegistered,
    RegistryError,
    RegistryUnavailable,
    ServerInfo,
    ServerKey,
    ServerState,
    ServerWatch,
    check_config_value,
    validate_config_key,
    validate_name,
)
from imsdk_server.backends.registry._watch import LatestWatch, closed_error
from imsdk_server.metrics import Metrics

__all__ = ["ZooKeeperRegistry"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_RESTORE_FIRST_DELAY = 0.1
"""Seconds before the first retry of a failed re-creation of our entries; doubles up to the next."""
_RESTORE_MAX_DELAY = 5.0


def _ignore(event: Any) -> None:
    """Placeholder watcher until a watch is opened."""


def _kazoo() -> Any:
    try:
        import kazoo.client
        import kazoo.exceptions
        import kazoo.protocol.states
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RegistryError("the ZooKeeper registry needs kazoo: pip install 'imsdk[zookeeper]'") from exc
    return kazoo


class ZooKeeperRegistry:
    """A :class:`~imsdk_server.backends.registry.Registry` stored in ZooKeeper.

    Open it with :meth:`connect`. Entries it registers are ephemeral znodes of its session; when the session
    expires and a new one is established it re-creates them (with their last state).
    """

    def __init__(
        self,
        client: Any,
        *,
        root: str,
        operation_timeout: float,
        token: anyio.lowlevel.EventLoopToken,
        metrics: Metrics,
    ) -> None:
        kz = _kazoo()
        self._zk = client
        self._root = root.rstrip("/") or ""
        self._timeout = operation_timeout
        self._token = token
        self._loop_thread = threading.get_ident()
        self._metrics = metrics
        self._states = kz.protocol.states.KazooState
        self._exc = kz.exceptions
        self._unavailable_errors: tuple[type[BaseException], ...] = (
            kz.exceptions.ConnectionLoss,
            kz.exceptions.SessionExpiredError,
            kz.exceptions.ConnectionClosedError,
            kz.exceptions.OperationTimeoutError,
            client.handler.timeout_exception,
        )
        self._lock = threading.RLock()
        self._owned: dict[ServerKey, ServerInfo] = {}
        self._watches: set[LatestWatch[Any]] = set()
        self._available = True
        self._lost = False
        self._closed = False
        self._stopping = threading.Event()  # wakes a restore retry sleeping in backoff when we close
        self._connections = 0  # counts CONNECTED events: a restore loop of an older one stops
        self._available_gauge = metrics.gauge("registry_available")
        self._available_gauge.set(1)
        client.add_listener(self._on_state)

    @classmethod
    async def connect(
        cls,
        hosts: str,
        *,
        root: str = "/imsdk",
        session_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        operation_timeout: float = 5.0,
        metrics: Metrics | None = None,
    ) -> ZooKeeperRegistry:
        """Connect to ``hosts`` ("h1:2181,h2:2181") and keep everything under ``root``.

        ``session_timeout`` is how long ZooKeeper keeps our entries after it last heard from us (the server
        clamps it to 2–20 ticks). Raises :class:`RegistryUnavailable` when no session can be had within
        ``connect_timeout`` seconds.
        """
        if not root.startswith("/"):
            raise InvalidRegistryData(f"the root path must start with '/': {root!r}")
        kz = _kazoo()
        client = kz.client.KazooClient(
            hosts=hosts,
            timeout=session_timeout,
            connection_retry={"max_tries": -1, "delay": 0.1, "backoff": 2, "max_delay": 2.0},
            logger=log,
        )

        def start() -> None:
            try:
                client.start(timeout=connect_timeout)
            except client.handler.timeout_exception:
                raise RegistryUnavailable(
                    f"no ZooKeeper session with {hosts} within {connect_timeout} s"
                ) from None

        await anyio.to_thread.run_sync(start)
        return cls(
            client,
            root=root,
            operation_timeout=operation_timeout,
            token=anyio.lowlevel.current_token(),
            metrics=metrics if metrics is not None else Metrics(),
        )

    # --------------------------------------------------------------------------- paths

    def _role_path(self, domain: str, role: str) -> str:
        return f"{self._root}/domains/{domain}/servers/{role}"

    def _server_path(self, key: ServerKey) -> str:
        return f"{self._role_path(key.domain, key.role)}/{key.server_id}"

    def _config_path(self, key: str) -> str:
        return f"{self._root}/config/{key}"

    # --------------------------------------------------------------------------- plumbing

    @contextlib.contextmanager
    def _mapped(self) -> Iterator[None]:
        """Map kazoo's failures to our error tree (runs in worker threads)."""
        try:
            yield
        except self._unavailable_errors as exc:
            raise RegistryUnavailable(f"ZooKeeper is unreachable: {exc!r}") from None
        except self._exc.KazooException as exc:
            raise RegistryError(f"ZooKeeper refused the request: {exc!r}") from None

    def _wait(self, async_result: Any) -> Any:
        """Wait for a kazoo async result with the operation timeout (worker thread only)."""
        return async_result.get(timeout=self._timeout)

    async def _run(self, op: str, fn: Callable[[], T]) -> T:
        if self._closed:
            raise closed_error()
        if not self._available:
            self._metrics.counter("registry_errors", error="RegistryUnavailable").inc()
            raise RegistryUnavailable("the ZooKeeper session is suspended or lost")
        self._metrics.counter("registry_operations", op=op).inc()

        def guarded() -> T:
            with self._mapped():
                return fn()

        try:
            return await anyio.to_thread.run_sync(guarded)
        except RegistryError as exc:
            self._metrics.counter("registry_errors", error=type(exc).__name__).inc()
            raise

    def _hop(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the event-loop thread from a kazoo thread; dropped if the loop is gone."""
        if threading.get_ident() == self._loop_thread:
            fn()
            return
        try:
            anyio.from_thread.run_sync(fn, token=self._token)
        except RuntimeError:  # the event loop is closed: nobody is left to tell
            pass

    def _on_state(self, state: Any) -> None:
        """kazoo's connection listener: runs on kazoo's connection thread, so it must not block."""
        if self._closed:
            return
        if state == self._states.SUSPENDED:
            self._available = False
            threading.Thread(target=self._hop, args=(self._mark_down,), daemon=True).start()
        elif state == self._states.LOST:
            self._available = False
            self._lost = True
            threading.Thread(target=self._hop, args=(self._mark_lost,), daemon=True).start()
        elif state == self._states.CONNECTED:
            self._connections += 1
            threading.Thread(target=self._reconnected, args=(self._connections,), daemon=True).start()

    def _mark_down(self) -> None:
        self._available_gauge.set(0)

    def _mark_lost(self) -> None:
        self._available_gauge.set(0)
        self._metrics.counter("registry_session_losses").inc()

    def _reconnected(self, connection: int) -> None:
        """After (re)connection: re-create our ephemeral entries if the session was new, then wake watches.

        A failed re-creation is retried with backoff until it succeeds, the registry closes, or a newer
        connection takes over (its own thread then carries on); meanwhile calls answer
        :class:`RegistryUnavailable`.
        """
        delay = _RESTORE_FIRST_DELAY
        while True:
            with self._lock:
                if self._closed or connection != self._connections:
                    return
                try:
                    restored = self._restore() if self._lost else 0
                except (RegistryError, *self._unavailable_errors, self._exc.KazooException) as exc:
                    failure: BaseException | None = exc
                else:
                    failure = None
                    self._lost = False
                    self._available = True
            if failure is None:
                break
            log.warning("re-creating registry entries failed (%r); retrying in %.1f s", failure, delay)
            self._hop(self._count_restore_failure)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, _RESTORE_MAX_DELAY)

        def wake() -> None:
            self._available_gauge.set(1)
            if restored:
                self._metrics.counter("registry_reregistrations").inc(restored)
            for w in list(self._watches):
                w.poke()

        self._hop(wake)

    def _count_restore_failure(self) -> None:
        self._metrics.counter("registry_restore_failures").inc()

    def _restore(self) -> int:
        """Re-create every owned entry in the new session (lock held, not on the loop thread).

        Returns how many entries the session holds afterwards; safe to run again after a partial failure
        (entries an earlier attempt created are found, owned by this session, and updated).
        """
        session = self._zk.client_id[0] if self._zk.client_id else None
        count = 0
        for key, info in list(self._owned.items()):
            path = self._server_path(key)
            try:
                self._wait(self._zk.create_async(path, info.to_json(), ephemeral=True, makepath=True))
                count += 1
            except self._exc.NodeExistsError:
                _, stat = self._wait(self._zk.get_async(path))
                if stat.ephemeralOwner == session:
                    self._wait(self._zk.set_async(path, info.to_json()))
                    count += 1
                else:
                    log.error("registry entry %s was taken by another session; giving it up", path)
                    del self._owned[key]
        return count

    def _signal(self, w: LatestWatch[Any]) -> Callable[[Any], None]:
        """A kazoo watcher that marks ``w`` dirty (one object per watch, so kazoo keeps one copy per path)."""

        def on_event(event: Any) -> None:
            if not (self._closed or w.closed):
                self._hop(w.poke)

        return on_event

    # --------------------------------------------------------------------------- registration

    async def allocate_server_id(self) -> int:
        path = f"{self._root}/ids"

        def allocate() -> int:
            self._wait(self._zk.ensure_path_async(path))
            stat = self._wait(self._zk.set_async(path, b""))
            version = int(stat.version)
            if not 1 <= version <= MAX_SERVER_ID:
                raise RegistryError(f"the server-id counter at {path} is out of range: {version}")
            return version

        return await self._run("allocate", allocate)

    async def register(self, info: ServerInfo) -> None:
        key = info.key

        def register() -> None:
            with self._lock:
                if key in self._owned:
                    raise AlreadyRegistered(f"{key} is registered already")
                try:
                    self._wait(
                        self._zk.create_async(
                            self._server_path(key), info.to_json(), ephemeral=True, makepath=True
                        )
                    )
                except self._exc.NodeExistsError:
                    raise AlreadyRegistered(f"{key} is registered already") from None
                self._owned[key] = info

        await self._run("register", register)

    async def set_state(self, key: ServerKey, state: ServerState) -> ServerInfo:
        def update() -> ServerInfo:
            with self._lock:
                info = self._owned.get(key)
                if info is None:
                    raise NotRegistered(f"this client has not registered {key}")
                new = info.with_state(state)
                if new != info:
                    try:
                        self._wait(self._zk.set_async(self._server_path(key), new.to_json()))
                    except self._exc.NoNodeError:
                        raise RegistryUnavailable(f"{key} vanished with the session; retry later") from None
                    self._owned[key] = new
                return new

        return await self._run("set_state", update)

    async def deregister(self, key: ServerKey) -> None:
        def deregister() -> None:
            with self._lock:
                if key not in self._owned:
                    raise NotRegistered(f"this client has not registered {key}")
                with contextlib.suppress(self._exc.NoNodeError):
                    self._wait(self._zk.delete_async(self._server_path(key)))
                del self._owned[key]

        await self._run("deregister", deregister)

    # --------------------------------------------------------------------------- discovery

    def _read_servers(
        self, domain: str, role: str, watch: Callable[[Any], None] | None
    ) -> tuple[ServerInfo, ...]:
        """Read every entry of a role (worker thread); with ``watch``, arm it on the children and entries."""
        path = self._role_path(domain, role)
        while True:
            try:
                children = self._wait(self._zk.get_children_async(path, watch=watch))
                break
            except self._exc.NoNodeError:
                if watch is None:
                    return ()
                # A watch needs the node to exist: create the (persistent) role node and try again.
                self._wait(self._zk.ensure_path_async(path))
        pending = [(c, self._zk.get_async(f"{path}/{c}", watch=watch)) for c in children if c.isdigit()]
        found: list[ServerInfo] = []
        for child, result in pending:
            try:
                data, _ = self._wait(result)
            except self._exc.NoNodeError:
                continue
            try:
                info = ServerInfo.from_json(data)
                if info.key != ServerKey(domain, role, int(child)):
                    raise InvalidRegistryData(f"entry {child} describes {info.key}")
            except InvalidRegistryData as exc:
                log.warning("skipping bad registry entry %s/%s: %s", path, child, exc)
                self._metrics.counter("registry_bad_entries").inc()
                continue
            found.append(info)
        return tuple(sorted(found, key=lambda i: i.server_id))

    async def list_servers(self, domain: str, role: str) -> tuple[ServerInfo, ...]:
        validate_name("domain", domain)
        validate_name("role", role)
        return await self._run("list", lambda: self._read_servers(domain, role, None))

    def _make_watch(self, kind: str, read: Callable[[Callable[[Any], None]], T]) -> LatestWatch[T]:
        signal: Callable[[Any], None] = _ignore

        async def refresh() -> T:
            value = await self._run(f"watch_{kind}", lambda: read(signal))
            self._metrics.counter("registry_watch_updates", kind=kind).inc()
            return value

        async def on_open(w: LatestWatch[T]) -> None:
            nonlocal signal
            signal = self._signal(w)
            self._watches.add(w)
            try:
                w.put(await refresh())
            except BaseException:
                self._watches.discard(w)
                raise

        def on_close(w: LatestWatch[T]) -> None:
            self._watches.discard(w)

        return LatestWatch(
            on_open=on_open, on_close=on_close, refresh=refresh, recoverable=(RegistryUnavailable,)
        )

    def watch_servers(self, domain: str, role: str) -> ServerWatch:
        validate_name("domain", domain)
        validate_name("role", role)
        return self._make_watch("servers", lambda signal: self._read_servers(domain, role, signal))

    # --------------------------------------------------------------------------- configuration

    async def get_config(self, key: str) -> bytes | None:
        path = self._config_path(validate_config_key(key))

        def get() -> bytes | None:
            try:
                data, _ = self._wait(self._zk.get_async(path))
            except self._exc.NoNodeError:
                return None
            return bytes(data)

        return await self._run("get", get)

    async def set_config(self, key: str, value: bytes) -> None:
        path = self._config_path(validate_config_key(key))
        value = check_config_value(value)

        def put() -> None:
            try:
                self._wait(self._zk.set_async(path, value))
            except self._exc.NoNodeError:
                try:
                    self._wait(self._zk.create_async(path, value, makepath=True))
                except self._exc.NodeExistsError:  # created meanwhile by someone else: last writer wins
                    self._wait(self._zk.set_async(path, value))

        await self._run("set", put)

    async def delete_config(self, key: str) -> None:
        path = self._config_path(validate_config_key(key))

        def delete() -> None:
            with contextlib.suppress(self._exc.NoNodeError):
                self._wait(self._zk.delete_async(path))

        await self._run("delete", delete)

    def _read_config(self, path: str, watch: Callable[[Any], None]) -> bytes | None:
        while True:
            try:
                data, _ = self._wait(self._zk.get_async(path, watch=watch))
                return bytes(data)
            except self._exc.NoNodeError:
                # get() leaves no watch on a missing node; exists() does, and says if it appeared meanwhile.
                if self._wait(self._zk.exists_async(path, watch=watch)) is None:
                    return None

    def watch_config(self, key: str) -> ConfigWatch:
        path = self._config_path(validate_config_key(key))
        return self._make_watch("config", lambda signal: self._read_config(path, signal))

    # --------------------------------------------------------------------------- lifecycle

    @property
    def session_id(self) -> int | None:
        """The current ZooKeeper session id (changes when a session expires and a new one starts)."""
        cid = self._zk.client_id
        return int(cid[0]) if cid else None

    @property
    def kazoo_client(self) -> Any:
        """The underlying :class:`kazoo.client.KazooClient`, for diagnostics and fault-injection tests."""
        return self._zk

    async def aclose(self) -> None:
        """Close the session: ZooKeeper deletes our ephemeral entries at once; watches end."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        for w in list(self._watches):
            w.end(closed_error())
        self._watches.clear()
        self._zk.remove_listener(self._on_state)

        def shutdown() -> None:
            with self._lock:
                self._owned.clear()
            try:
                self._zk.stop()
            finally:
                self._zk.close()

        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shutdown)

    async def __aenter__(self) -> ZooKeeperRegistry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
