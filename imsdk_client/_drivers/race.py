"""The access-point race over real sockets: the anyio driver of :class:`~imsdk_client._core.race.RacePlan`.

:func:`race_connect` opens a connection to every endpoint at once, runs the caller's handshake coroutine on
each, keeps the first to finish and closes all the others, also those that finish a moment later. It arms one
timer for the plan's next deadline. :func:`race_with_refresh` asks for a fresh list when a whole race failed.
Runs on asyncio and trio.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio
import anyio.abc

from imsdk_client._core.race import (
    Abandon,
    Action,
    AttemptFailure,
    Connect,
    Endpoint,
    Exhausted,
    RacePlan,
    Won,
)
from imsdk_client._errors import TransportError

__all__ = [
    "AllAccessPointsFailed",
    "Connector",
    "Handshake",
    "RaceResult",
    "race_connect",
    "race_with_refresh",
]

T = TypeVar("T")

#: Opens the transport to one endpoint (TCP by default; a TLS connector wraps it).
Connector = Callable[[Endpoint], Awaitable[anyio.abc.ByteStream]]
#: The caller's handshake on a fresh stream; its return value is handed back with the winning stream.
Handshake = Callable[[anyio.abc.ByteStream, Endpoint], Awaitable[T]]


class AllAccessPointsFailed(TransportError):
    """Every access point of a race (or of every round of :func:`race_with_refresh`) failed.

    :attr:`failures` lists each endpoint tried and why it failed; the caller should fetch a fresh list.
    """

    def __init__(self, failures: Sequence[AttemptFailure], rounds: int = 1) -> None:
        self.failures: tuple[AttemptFailure, ...] = tuple(failures)
        self.rounds = rounds
        if self.failures:
            detail = "; ".join(f"{f.endpoint}: {f.reason}" for f in self.failures)
            message = f"all access points failed ({detail})"
        else:
            message = "no access points to try"
        if rounds > 1:
            message += f" after {rounds} rounds"
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class RaceResult(Generic[T]):
    """The winner of a race: endpoint, open stream (the caller's to close) and handshake result."""

    endpoint: Endpoint
    stream: anyio.abc.ByteStream
    handshake: T
    failures: tuple[AttemptFailure, ...]
    """Attempts that had failed before the winner finished (for logs and metrics)."""


async def _connect_tcp(endpoint: Endpoint) -> anyio.abc.ByteStream:
    return await anyio.connect_tcp(endpoint.host, endpoint.port)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def race_connect(
    endpoints: Sequence[Endpoint],
    handshake: Handshake[T],
    *,
    attempt_timeout: float = 5.0,
    connector: Connector | None = None,
) -> RaceResult[T]:
    """Connect to every endpoint at once; return the first whose handshake completes.

    Every other attempt is cancelled and its stream closed before this returns. Raises
    :class:`AllAccessPointsFailed` when every attempt fails or runs out of ``attempt_timeout``. An exception
    from ``handshake`` fails that attempt only. If the caller is cancelled, every stream is closed.
    """
    if not endpoints:
        raise AllAccessPointsFailed(())
    connect = connector or _connect_tcp
    plan = RacePlan(endpoints, attempt_timeout=attempt_timeout)
    scopes: dict[int, anyio.CancelScope] = {}
    won: list[tuple[anyio.abc.ByteStream, T]] = []

    try:
        async with anyio.create_task_group() as tg:

            def apply(actions: list[Action]) -> None:
                for action in actions:
                    if isinstance(action, Connect):
                        scopes[action.index] = anyio.CancelScope()
                        tg.start_soon(attempt, action.index, action.endpoint, scopes[action.index])
                    elif isinstance(action, Abandon):
                        scopes[action.index].cancel()
                    elif isinstance(action, Won | Exhausted):
                        tg.cancel_scope.cancel()  # ends the timer; losers were abandoned just before

            async def attempt(index: int, endpoint: Endpoint, scope: anyio.CancelScope) -> None:
                stream: anyio.abc.ByteStream | None = None
                try:
                    with scope:
                        try:
                            stream = await connect(endpoint)
                            apply(plan.connected(index, anyio.current_time()))
                            result = await handshake(stream, endpoint)
                        except Exception as exc:
                            if not scope.cancel_called:
                                apply(plan.failed(index, _describe(exc), anyio.current_time()))
                            return
                        # No checkpoint between the handshake's end and the plan's verdict: no other attempt
                        # can sneak in, and a stream that lost goes to the `finally` below to be closed.
                        actions = plan.handshake_done(index, anyio.current_time())
                        if plan.winner == index:
                            won.append((stream, result))
                            stream = None
                        apply(actions)
                finally:
                    if stream is not None:
                        await anyio.aclose_forcefully(stream)

            async def timer() -> None:
                while not plan.done:
                    deadline = plan.next_deadline()
                    if deadline is None:  # pragma: no cover - a live attempt always has a deadline
                        return
                    await anyio.sleep_until(deadline)
                    apply(plan.handle_timer(anyio.current_time()))

            apply(plan.start(anyio.current_time()))
            tg.start_soon(timer)

    except BaseException:
        # Cancelled from outside (or a bug) after a winner was chosen: its stream is ours to close.
        for stream, _ in won:
            await anyio.aclose_forcefully(stream)
        raise

    if plan.winner is None:
        raise AllAccessPointsFailed(plan.failures)
    stream, result = won[0]
    return RaceResult(plan.endpoints[plan.winner], stream, result, plan.failures)


async def race_with_refresh(
    fetch: Callable[[], Awaitable[Sequence[Endpoint]]],
    handshake: Handshake[T],
    *,
    endpoints: Sequence[Endpoint] | None = None,
    max_rounds: int = 3,
    attempt_timeout: float = 5.0,
    connector: Connector | None = None,
) -> RaceResult[T]:
    """Race ``endpoints`` (or a list from ``fetch``); when all fail, ``fetch`` a fresh list and race again.

    At most ``max_rounds`` races run. Raises :class:`AllAccessPointsFailed` with every failure of every round.
    Errors raised by ``fetch`` itself (the access manager is down, the token expired) propagate unchanged.
    """
    if max_rounds < 1:
        raise ValueError("max_rounds must be at least 1")
    current = list(endpoints) if endpoints else list(await fetch())
    failures: list[AttemptFailure] = []
    for round_no in range(1, max_rounds + 1):
        try:
            return await race_connect(
                current, handshake, attempt_timeout=attempt_timeout, connector=connector
            )
        except AllAccessPointsFailed as exc:
            failures.extend(exc.failures)
        if round_no < max_rounds:
            current = list(await fetch())
    raise AllAccessPointsFailed(failures, rounds=max_rounds)
