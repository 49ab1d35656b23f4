"""Offline sync: 10,000 stored messages across 100 conversations for one user; time from login to sync-done.

The router core, the group-commit writer and the embedded store (a SQLite file) run in this process; the
frames the core emits are counted as an access server would receive them. Seeding goes through the
group-commit writer, so it also reports the server CPU spent per 1,000 durable messages.

    python -m bench.offline_sync [--messages 10000] [--conversations 100]

The last line is exactly ``offline sync: <N> messages in <T> s``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import anyio
import anyio.lowlevel

from imsdk_proto import messages as pb
from imsdk_proto.codes import ChatFunc, ErrorCode, SyncFunc
from imsdk_server.backends.sql import SQLiteDatabase
from imsdk_server.routing import (
    AppendResult,
    GroupCommitWriter,
    LoadPending,
    LoadRange,
    NewMessage,
    RouterConfig,
    RouterCore,
    SendFrame,
    SQLMessageStore,
    conversation_id,
)


async def _seed(store: SQLMessageStore, messages: int, conversations: int) -> float:
    """Store the messages through the group-commit writer; returns CPU seconds spent."""
    writer = GroupCommitWriter(store, max_batch=500, max_delay=0.002)
    body = pb.ChatText(text="x" * 100).SerializeToString()
    done = anyio.Event()
    count = 0

    def on_done(result: AppendResult | Exception) -> None:
        nonlocal count
        if isinstance(result, Exception):
            raise result
        count += 1
        if count == messages:
            done.set()

    cpu = time.process_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        for i in range(messages):
            sender = f"friend{i % conversations:03d}"
            writer.submit(
                NewMessage(conversation_id(sender, "me"), sender, "phone", i + 1, "me", ChatFunc.TEXT, body,
                           1_700_000_000_000 + i),
                on_done,
            )  # fmt: skip
            if i % 500 == 499:
                await anyio.lowlevel.checkpoint()
        await done.wait()
        tg.cancel_scope.cancel()
    return time.process_time() - cpu


async def _login(store: SQLMessageStore, core: RouterCore) -> tuple[int, int]:
    """Feed the core's actions through the store until the sync-done marker; returns (messages, frames)."""
    actions = core.device_online("me", "phone", 1, time.time())
    received = frames = 0
    while actions:
        action = actions.pop(0)
        if isinstance(action, LoadPending):
            records = await store.pending(action.uid, action.device, action.after, action.limit)
            actions += core.records_loaded(action.token, records, time.time())
        elif isinstance(action, LoadRange):
            raise AssertionError("no range pulls in this benchmark")
        elif isinstance(action, SendFrame):
            frames += 1
            if action.header.func == SyncFunc.BATCH:
                received += len(pb.SyncBatch.FromString(action.body).messages)
            elif action.header.func == SyncFunc.DONE:
                return received, frames
    raise RuntimeError(f"no sync-done marker ({ErrorCode.INTERNAL.name})")


async def main(messages: int, conversations: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLMessageStore(SQLiteDatabase(str(Path(tmp) / "messages.db")))
        await store.setup()
        cpu = await _seed(store, messages, conversations)
        print(f"seeded {messages} messages in {conversations} conversations: "
              f"{cpu * 1000 / (messages / 1000):.1f} ms server CPU per 1k durable messages")  # fmt: skip
        core = RouterCore(RouterConfig(server_id=1))
        started = time.perf_counter()
        received, frames = await _login(store, core)
        elapsed = time.perf_counter() - started
        await store.aclose()
    if received != messages:
        raise SystemExit(f"expected {messages} messages, the catch-up carried {received}")
    print(f"{frames} frames (batches and done)")
    print(f"offline sync: {received} messages in {elapsed:.3f} s")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--conversations", type=int, default=100)
    args = parser.parse_args()
    anyio.run(main, args.messages, args.conversations)


if __name__ == "__main__":
    cli()
