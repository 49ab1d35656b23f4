"""The server side of ``bench.relay``: access server + message router + location service in one process.

Everything runs on the embedded defaults, as ``tests/routing/test_service_links.py`` assembles them: the
in-process queue and registry, the location service fed from the queue, a SQLite message store in a
temporary directory behind the group-commit writer, and the access server linked to the router over a real
loopback link. The process pins itself to one CPU before any thread starts (the SQLite worker threads
inherit the pin), runs on uvloop when installed, prints ``<host> <port>`` of the access server once the link
is ready, and then obeys one command per line on stdin:

``profile on`` / ``profile off <path>``
    start cProfile / stop it and dump the statistics to ``path``;
``sample on`` / ``sample off <path>``
    start sampling the event loop's stack every half millisecond of CPU time / stop and write a text report
    of where the CPU went (by component, and by function, innermost frame) to ``path``. Unlike cProfile
    this barely slows the server, so the shares are those of a normal run;
``metrics <path>``
    write a snapshot of the server's metrics as text to ``path``;
end of input
    stop.

Run by ``bench.relay``; ``python -m bench._relay_server <key ring> <data dir> <cpu>`` by hand.
"""

from __future__ import annotations

import collections
import cProfile
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

ROUTER_ID = 7
ACCESS_ID = 3


def pin(cpu: int) -> None:
    """Pin the calling thread (and the threads it starts later) to ``cpu`` when the machine has it."""
    if cpu >= 0 and hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


#: Components by path fragment, most specific first.
_COMPONENTS = (
    ("imsdk_server/routing/_core", "router core"),
    ("imsdk_server/routing/_service", "router service"),
    ("imsdk_server/routing/_writer", "group-commit writer"),
    ("imsdk_server/routing/_store", "message store"),
    ("imsdk_server/access/", "access server"),
    ("imsdk_server/links/", "links"),
    ("imsdk_server/location/", "location"),
    ("imsdk_proto/", "frame codec"),
)
_IDLE = "event loop in C (uvloop: polling, socket calls)"


class Sampler:
    """A statistical profiler of the event loop's Python stack, sampling on CPU time, with little overhead.

    ``ITIMER_PROF`` sends ``SIGPROF`` every ``interval`` seconds of the process's CPU time, and the handler,
    which Python runs on the main thread (the event loop's), records the stack it interrupted. Samples are
    therefore proportional to CPU spent, and idle waiting is never sampled. (A thread that samples on wall
    time, as this did before, sees the loop mostly at the points where it releases the GIL -- waiting for
    I/O -- and under-counts pure Python work several times over.) CPU spent in C between two Python frames
    (uvloop, system calls) is charged to the next Python code to run, or, when only the loop runner is on
    the stack, to the event loop itself.

    Each sample is charged to the component of its innermost project frame (so a dataclass constructor or a
    metrics counter counts for the component that called it, and the router's work, which runs inside the
    link reader, counts for the router). ``SIGPROF`` counts the CPU of every thread, so for the offline class
    the SQLite writer's CPU is charged to the loop's Python code too.
    """

    def __init__(self, interval: float = 0.0005) -> None:
        self.interval = interval
        self.stacks: collections.Counter[tuple[tuple[str, str], ...]] = collections.Counter()
        self._previous: Any = None

    def start(self) -> None:
        self._previous = signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, self._previous or signal.SIG_DFL)

    def _sample(self, signum: int, frame: FrameType | None) -> None:
        stack = []
        while frame is not None:
            stack.append((frame.f_code.co_filename, frame.f_code.co_name))
            frame = frame.f_back
        self.stacks[tuple(stack)] += 1

    @staticmethod
    def _component(stack: tuple[tuple[str, str], ...]) -> str:
        for filename, _ in stack:
            for fragment, name in _COMPONENTS:
                if fragment in filename:
                    return name
        if not stack or stack[0][0].endswith("asyncio/runners.py"):  # inside uvloop's run_until_complete
            return _IDLE
        return "anyio / asyncio (Python)"

    def report(self) -> str:
        total = sum(self.stacks.values()) or 1
        components: collections.Counter[str] = collections.Counter()
        functions: collections.Counter[str] = collections.Counter()
        for stack, n in self.stacks.items():
            component = self._component(stack)
            components[component] += n
            filename, func = stack[0] if stack else ("?", "?")
            where = filename.split("site-packages/")[-1].split("/work/main/")[-1].split("python3.11/")[-1]
            functions[_IDLE if component == _IDLE else f"{where}:{func} ({component})"] += n
        lines = [f"{total} samples (SIGPROF on CPU time)", "", "by component (innermost project frame):"]
        lines += [f"  {n / total:6.1%}  {name}" for name, n in components.most_common()]
        lines += ["", "by function (innermost frame; top 50):"]
        lines += [f"  {n / total:6.1%}  {name}" for name, n in functions.most_common(50)]
        return "\n".join(lines) + "\n"


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
        sampler: Sampler | None = None
        metrics = Metrics()
        verifier = LocalTokenVerifier(TokenVerifier(KeyRing.load(ring_path)))
        queues = MemoryQueueHub()
        registry = await MemoryRegistryHub().connect()
        store = SQLMessageStore(SQLiteDatabase(str(Path(data_dir) / "messages.db")), metrics=metrics)
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
            router_done = anyio.Event()

            async def run_router(*, task_status: anyio.abc.TaskStatus[tuple[str, int]]) -> None:
                try:
                    await router.serve(task_status=task_status)
                finally:
                    router_done.set()

            link = await hub.connect(*await tg.start(run_router), expect_server_id=ROUTER_ID)
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
                elif words[:2] == ["sample", "on"]:
                    sampler = Sampler()
                    sampler.start()
                elif words[:2] == ["sample", "off"] and sampler is not None:
                    sampler.stop()
                    report = sampler.report()
                    await anyio.Path(words[2]).write_text(report)
                elif words[:1] == ["metrics"]:
                    text = metrics.render_prometheus()
                    await anyio.Path(words[1]).write_text(text)
                print("ok", flush=True)
            router.stop()  # the orderly way out: deregister, drain the link to the access server, stop
            with anyio.move_on_after(15):
                await router_done.wait()
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
