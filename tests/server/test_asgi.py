"""The suite's one uvicorn runner, for real over loopback: the bound address it reports, a port in use, a
graceful stop that lets a request in flight finish, and that nothing (socket, task, descriptor) outlives
it."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from imsdk_server._asgi import Receive, Scope, Send, bind_socket, serve_asgi

pytestmark = pytest.mark.anyio

GUARD = 10.0


class Gate:
    """An ASGI app: ``/slow`` waits for :attr:`release`; every path answers ``200 done <path>``."""

    def __init__(self) -> None:
        self.entered = anyio.Event()
        self.release = anyio.Event()
        self.cancelled = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        path: str = scope["path"]
        if path == "/slow":
            self.entered.set()
            try:
                await self.release.wait()
            except anyio.get_cancelled_exc_class():
                self.cancelled += 1
                raise
        body = f"done {path}".encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class Running:
    """serve_asgi in its own cancel scope, with an event for "it returned"."""

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.returned = anyio.Event()

    def runner(
        self, app: Gate, where: socket.socket | tuple[str, int], **kwargs: Any
    ) -> Callable[..., Coroutine[Any, Any, None]]:
        async def run(
            *, task_status: anyio.abc.TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED
        ) -> None:
            try:
                with self.scope:
                    await serve_asgi(app, where, task_status=task_status, **kwargs)
            finally:
                self.returned.set()

        return run


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


async def refused(host: str, port: int) -> bool:
    try:
        stream = await anyio.connect_tcp(host, port)
    except OSError:
        return True
    await stream.aclose()
    return False


async def read_to_end(stream: anyio.abc.ByteStream) -> bytes:
    data = b""
    with anyio.fail_after(GUARD):
        while True:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
                return data


async def test_reports_the_bound_port_and_serves_until_cancelled() -> None:
    app, running = Gate(), Running()
    async with anyio.create_task_group() as tg:
        host, port = await tg.start(running.runner(app, ("127.0.0.1", 0)))
        assert (host, port != 0) == ("127.0.0.1", True)
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=GUARD) as client:
            for path in ("/", "/a/b"):
                r = await client.get(path)
                assert (r.status_code, r.text) == (200, f"done {path}")
                assert "server" not in r.headers
        running.scope.cancel()
    assert running.returned.is_set()
    assert await refused(host, port)


async def test_a_socket_given_is_served_and_closed() -> None:
    sock = bind_socket("127.0.0.1", 0)
    bound = sock.getsockname()[:2]
    app, running = Gate(), Running()
    async with anyio.create_task_group() as tg:
        assert await tg.start(running.runner(app, sock)) == bound
        async with httpx.AsyncClient(timeout=GUARD) as client:
            assert (await client.get(f"http://{bound[0]}:{bound[1]}/x")).text == "done /x"
        running.scope.cancel()
    assert sock.fileno() == -1
    assert await refused(*bound)


@pytest.mark.parametrize(
    ("host", "taken", "errno_", "message"),
    [
        ("127.0.0.1", True, errno.EADDRINUSE, "cannot listen on 127.0.0.1:{port}: address already in use"),
        ("192.0.2.1", False, errno.EADDRNOTAVAIL, "cannot listen on 192.0.2.1:{port}: cannot assign"),
    ],
)
async def test_an_address_that_cannot_be_bound_fails_before_anything_starts(
    host: str, taken: bool, errno_: int, message: str
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        if taken:
            holder.listen(1)
        app, running = Gate(), Running()
        before = open_fds()
        async with anyio.create_task_group() as tg:
            with pytest.raises(OSError) as caught:  # noqa: PT011 - errno and message checked below
                await tg.start(running.runner(app, (host, port)))
        assert caught.value.errno == errno_
        assert str(caught.value.strerror).startswith(message.format(port=port))
        assert open_fds() == before


async def test_stop_lets_a_request_in_flight_finish_and_refuses_new_connections() -> None:
    app, running = Gate(), Running()
    async with anyio.create_task_group() as tg:
        host, port = await tg.start(running.runner(app, ("127.0.0.1", 0), grace=30))
        stream = await anyio.connect_tcp(host, port)
        async with stream:
            await stream.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            with anyio.fail_after(GUARD):
                await app.entered.wait()
            running.scope.cancel()
            with anyio.fail_after(GUARD):
                while not await refused(host, port):  # noqa: ASYNC110 - polling the kernel, not a task
                    await anyio.sleep(0.01)
            # Still draining: the request holds the server open (its grace is far from over).
            assert not running.returned.is_set()
            app.release.set()
            reply = await read_to_end(stream)  # the whole response, then the server closes the connection
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert body == b"done /slow"
        with anyio.fail_after(GUARD):
            await running.returned.wait()
    assert app.cancelled == 0


async def test_a_request_outliving_the_grace_is_cancelled_and_the_server_still_stops() -> None:
    app, running = Gate(), Running()
    async with anyio.create_task_group() as tg:
        host, port = await tg.start(running.runner(app, ("127.0.0.1", 0), grace=1))
        stream = await anyio.connect_tcp(host, port)
        async with stream:
            await stream.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            with anyio.fail_after(GUARD):
                await app.entered.wait()
            running.scope.cancel()
            with anyio.fail_after(GUARD):
                await running.returned.wait()
            reply = await read_to_end(stream)
    assert app.cancelled == 1
    assert not reply.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("when", ["before start", "idle", "with a keep-alive connection open"])
async def test_cancellation_leaks_no_socket_task_or_descriptor(when: str) -> None:
    tasks_before = asyncio.all_tasks()
    fds_before = open_fds()
    app, running = Gate(), Running()
    async with anyio.create_task_group() as tg:
        if when == "before start":
            running.scope.cancel()
            tg.start_soon(running.runner(app, ("127.0.0.1", 0)))
            with anyio.fail_after(GUARD):
                await running.returned.wait()
        else:
            host, port = await tg.start(running.runner(app, ("127.0.0.1", 0)))
            if when == "idle":
                running.scope.cancel()
            else:
                stream = await anyio.connect_tcp(host, port)
                async with stream:
                    await stream.send(b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n")
                    with anyio.fail_after(GUARD):
                        assert (await stream.receive()).startswith(b"HTTP/1.1 200 ")
                    running.scope.cancel()
                    # uvicorn closes the idle keep-alive connection as it stops.
                    assert await read_to_end(stream) == b""
    assert running.returned.is_set()
    assert asyncio.all_tasks() == tasks_before
    assert open_fds() == fds_before


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_is_refused_clearly_and_the_socket_closed() -> None:
    sock = bind_socket("127.0.0.1", 0)
    with pytest.raises(RuntimeError, match="asyncio backend"):
        await serve_asgi(Gate(), sock)
    assert sock.fileno() == -1


async def test_a_negative_grace_is_refused() -> None:
    sock = bind_socket("127.0.0.1", 0)
    with pytest.raises(ValueError, match="grace"):
        await serve_asgi(Gate(), sock, grace=-1)
    assert sock.fileno() == -1
