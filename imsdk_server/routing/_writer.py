"""Group commit: appends that arrive together are committed in one transaction.

One transaction per message costs a commit (and, on MySQL, a round trip) each; the writer instead collects
messages for up to ``max_delay`` seconds or ``max_batch`` messages, whichever comes first, commits them with
one :meth:`~imsdk_server.routing.MessageStore.append`, and then answers every submitter. While a transaction
runs, new messages queue for the next one, so under load batches grow by themselves. Messages are committed
in submission order, which is what keeps a sender session's order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import anyio

from imsdk_server.backends.sql import SQLError
from imsdk_server.metrics import Metrics
from imsdk_server.routing._store import AppendResult, MessageStore, MessageStoreError, NewMessage
from imsdk_server.routing._store_sql import check_message

__all__ = ["GroupCommitWriter"]

Done = Callable[[AppendResult | Exception], None]
"""Called once per submitted message with its result, or with the error that failed its transaction."""


class GroupCommitWriter:
    """Batches appends to a :class:`~imsdk_server.routing.MessageStore`; run :meth:`run` in a task group."""

    def __init__(
        self,
        store: MessageStore,
        *,
        max_batch: int = 500,
        max_delay: float = 0.002,
        metrics: Metrics | None = None,
    ) -> None:
        if max_batch < 1 or max_delay < 0:
            raise ValueError("max_batch must be >= 1 and max_delay >= 0")
        self._store = store
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._queue: deque[tuple[NewMessage, Done]] = deque()
        self._wakeup = anyio.Event()
        self._full = anyio.Event()
        m = (metrics or Metrics()).child("writer")
        self._m_commits = m.counter("commits_total")
        self._m_failures = m.counter("commit_failures_total")
        self._m_batch = m.histogram("batch_size", buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
        m.gauge("queue_depth", lambda: float(len(self._queue)))

    @property
    def queued(self) -> int:
        """Messages waiting for the next transaction."""
        return len(self._queue)

    def submit(self, message: NewMessage, done: Done) -> None:
        """Queue ``message``; ``done`` gets its result after the commit. Raises ``InvalidMessage`` at once
        for a message the store cannot hold, so one bad message never fails a whole batch."""
        check_message(message)
        self._queue.append((message, done))
        self._wakeup.set()
        if len(self._queue) >= self._max_batch:
            self._full.set()

    async def append(self, message: NewMessage) -> AppendResult:
        """Submit ``message`` and wait for its commit; raises the error that failed its transaction."""
        finished = anyio.Event()
        outcome: list[AppendResult | Exception] = []

        def done(result: AppendResult | Exception) -> None:
            outcome.append(result)
            finished.set()

        self.submit(message, done)
        await finished.wait()
        result = outcome[0]
        if isinstance(result, Exception):
            raise result
        return result

    async def run(self) -> None:
        """Commit batches until cancelled."""
        while True:
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
            if self._max_delay > 0 and len(self._queue) < self._max_batch:
                with anyio.move_on_after(self._max_delay):
                    await self._full.wait()
            self._full = anyio.Event()
            while self._queue:
                await self._commit_one_batch()

    async def _commit_one_batch(self) -> None:
        n = min(len(self._queue), self._max_batch)
        batch = [self._queue.popleft() for _ in range(n)]
        try:
            results = await self._store.append([m for m, _ in batch])
        except (SQLError, MessageStoreError) as exc:
            self._m_failures.inc()
            for _, done in batch:
                done(exc)
            return
        except BaseException:
            # cancelled mid-commit: whatever happened, nobody is told it committed; put the batch back
            self._queue.extendleft(reversed(batch))
            raise
        self._m_commits.inc()
        self._m_batch.observe(n)
        for (_, done), result in zip(batch, results, strict=True):
            done(result)
