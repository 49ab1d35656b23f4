"""Find a ready echo server through ZooKeeper only, talk to it, then report when its entry vanishes.

Usage: python discover.py HOSTS ROOT DOMAIN. Prints ``GOT <server id> <reply>`` after one exchange and
``GONE`` when the watched role becomes empty again, then exits.
"""

from __future__ import annotations

import sys

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from imsdk_server.backends.registry import ServerState, ZooKeeperRegistry


async def main(hosts: str, root: str, domain: str) -> None:
    async with (
        await ZooKeeperRegistry.connect(hosts, root=root) as registry,
        registry.watch_servers(domain, "echo") as watch,
    ):
        talked = False
        async for snapshot in watch:
            ready = [s for s in snapshot if s.state is ServerState.READY]
            if ready and not talked:
                server = ready[0]
                async with await anyio.connect_tcp(server.host, server.port) as stream:
                    await stream.send(b"hello\n")
                    reply = await BufferedByteReceiveStream(stream).receive_until(b"\n", 1024)
                print(f"GOT {server.server_id} {reply.decode()}", flush=True)
                talked = True
            elif talked and not snapshot:
                print("GONE", flush=True)
                return


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3])
