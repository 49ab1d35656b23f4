"""Open a TCP echo listener, register its address in ZooKeeper, mark it ready, serve until killed.

Usage: python announce.py HOSTS ROOT DOMAIN. Prints ``READY <server id>`` once registered. Only the
registry carries the listener's port to anybody else.
"""

from __future__ import annotations

import sys

import anyio
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from imsdk_server.backends.registry import ServerInfo, ServerState, ZooKeeperRegistry


async def main(hosts: str, root: str, domain: str) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    # A short session: when this process is killed, ZooKeeper drops its entry soon (it clamps to 2 ticks).
    registry = await ZooKeeperRegistry.connect(hosts, root=root, session_timeout=2.0)
    server_id = await registry.allocate_server_id()
    info = ServerInfo(
        role="echo", server_id=server_id, name=f"echo-{server_id}", domain=domain, host="127.0.0.1", port=port
    )
    await registry.register(info)
    await registry.set_state(info.key, ServerState.READY)
    print(f"READY {server_id}", flush=True)

    async def handle(stream: SocketStream) -> None:
        async with stream:
            line = await BufferedByteReceiveStream(stream).receive_until(b"\n", 1024)
            await stream.send(b"echo:" + line + b"\n")

    await listener.serve(handle)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3])
