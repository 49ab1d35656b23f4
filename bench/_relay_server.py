"""The server side of ``bench.relay``: access server + message router + location service in one process.

Everything runs on the embedded defaults, as ``tests/routing/test_service_links.py`` assembles them: the
in-process queue and registry, the location service fed from the queue, a SQLite message store in a
temporary directory behind the group-commit writer, and the access server linked to the router over a real
loopback link. The process pins itself to one CPU before any thread starts (the SQLite worker threads
inherit the pin), runs on uvloop when installed, prints ``<host> <port>`` of the access server once the link
is ready, and then obeys one command per line on stdin:

``profile on`` / ``profile off <path>``
    start cProfile / stop it and dump the statistics to ``path``;
``metrics <path>``
    write a snapshot of the server's metrics as text to ``path``;
end of input
    stop.

Run by ``bench.relay``; ``python -m bench._relay_server <key ring> <data dir> <cpu>`` by hand.
"""

from __future__ import annotations

import cProfile
import os
import sys
from pathlib import Path

ROUTER_ID = 7
ACCESS_ID = 3


def pin(cpu: int) -> None:
    """Pin the calling thread (and the threads it starts later) to ``cpu`` when the machine has it."""
    if cpu >= 0 and hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def serve(ring_path: str, data_dir: str, cpu: int) -> None:
    pin(cpu)

    import anyio
    import anyio.to_thread

    from imsdk_server.access import AccessConfig, AccessServer, LinkRoutes, LocalTokenVerifier
    from imsdk_server.auth import KeyRing, TokenVerifier
    from imsdk_server.backends.queue import MemoryQueueHub
    from imsdk_server.backends.registry import MemoryRegistryHub
    from imsdk_server.backends.sql import SQLiteDatabase
    from imsdk_server.links import LinkHub, LinkIdentity
    from imsdk_server.location import LocationService
    from imsdk_server.metrics import Metrics
    from imsdk_server.routing import (
        ACCESS_ROLE,
        LocationPresence,
        RouterConfig,
        RouterServer,
        SQLMessageStore,
    )

    profiler = cProfile.Profile()

    async def main() -> None:
        metrics = Metrics()
        verifier = LocalTokenVerifier(TokenVerifier(KeyRing.load(ring_path)))
        queues = MemoryQueueHub()
        registry = await MemoryRegistryHub().connect()
        store = SQLMessageStore(SQLiteDatabase(str(Path(data_dir) / "messages.db")))
        await store.setup()
        location = LocationService(queue=await queues.connect(block=0.05), metrics=metrics)
        router = RouterServer(
            RouterConfig(server_id=ROUTER_ID), store, LocationPresence(location), registry=registry,
            metrics=metrics,
        )  # fmt: skip
        access = AccessServer(
            AccessConfig(server_id=ACCESS_ID), verifier, queue=await queues.connect(), metrics=metrics
        )
        routes = LinkRoutes(access.routes)
        hub = LinkHub(
            LinkIdentity(ACCESS_ROLE, ACCESS_ID, domain="default"),
            handler=access.on_link_frame,
            on_state=routes.on_state,
            metrics=metrics,
        )
        async with anyio.create_task_group() as tg, hub:
            await tg.start(location.run)
            host, port = await tg.start(access.serve)
            link = await hub.connect(*await tg.start(router.serve), expect_server_id=ROUTER_ID)
            await link.wait_ready()
            print(host, port, flush=True)
            while True:
                line = await anyio.to_thread.run_sync(sys.stdin.readline)
                if not line:
                    break
                words = line.split()
                if words[:2] == ["profile", "on"]:
                    profiler.enable()
                elif words[:2] == ["profile", "off"]:
                    profiler.disable()
                    profiler.dump_stats(words[2])
                elif words[:1] == ["metrics"]:
                    text = metrics.render_prometheus()
                    await anyio.Path(words[1]).write_text(text)
                print("ok", flush=True)
            router.stop()
            tg.cancel_scope.cancel()
        await store.aclose()

    try:
        import uvloop  # noqa: F401

        options = {"use_uvloop": True}
    except ImportError:
        options = {}
    anyio.run(main, backend="asyncio", backend_options=options)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
