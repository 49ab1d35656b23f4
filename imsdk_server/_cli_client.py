"""The client commands of ``imsdk``: ``demo``, ``send``, ``listen`` and ``chat``.

``imsdk_server._cli`` adds these subcommands with :func:`add_parsers` and hands them to :func:`run`. They
talk to a server as an ordinary user would, through :class:`imsdk_client.Client`::

    imsdk demo [--seconds S] [--users N] [--seed N] [--quiet]
    imsdk send   --as UID --to UID [--instant] [--json] TEXT
    imsdk listen --as UID [--count N] [--all]
    imsdk chat   --as UID [--to UID]

``send``, ``listen`` and ``chat`` take ``--server URL`` (the HTTP base URL, default
``http://127.0.0.1:8080``), the password from ``--password`` or ``$IMSDK_PASSWORD``, ``--device`` and
``--network``. Every error is one line on stderr (``imsdk: …``) and a non-zero exit status: 2 for a command
line that cannot work (no password, a server that is not an http URL), 1 for a failure (wrong password,
server unreachable, receiver offline for ``--instant``, unknown receiver). Heavy modules are imported only
when a command runs.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from imsdk_client import Client, Event, SendAcked

__all__ = ["COMMANDS", "ClientCommandError", "add_parsers", "describe_error", "event_json", "run"]

#: The subcommands this module adds to ``imsdk``.
COMMANDS: tuple[str, ...] = ("demo", "send", "listen", "chat")
DEFAULT_SERVER = "http://127.0.0.1:8080"
PASSWORD_ENV = "IMSDK_PASSWORD"
NETWORKS = ("wifi", "5g", "4g", "3g", "2g")
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class ClientCommandError(Exception):
    """A failure of a client command, reported as one line; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------------- parsers


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _connection_options(parser: argparse.ArgumentParser, device: str) -> None:
    parser.add_argument("--as", dest="uid", required=True, metavar="UID", help="the user to log in as")
    parser.add_argument(
        "--server", default=DEFAULT_SERVER, metavar="URL", help=f"HTTP base URL (default {DEFAULT_SERVER})"
    )
    parser.add_argument("--password", help=f"the password (default: ${PASSWORD_ENV})")
    parser.add_argument("--device", default=device, help=f"this device's id (default {device!r})")
    parser.add_argument("--network", default="wifi", choices=NETWORKS, help="network type (default wifi)")
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=15.0,
        metavar="SECONDS",
        help="how long logging in and connecting may take (default 15)",
    )


def add_parsers(sub: Any) -> None:
    """Add ``demo``, ``send``, ``listen`` and ``chat`` to the subparsers ``sub`` of ``imsdk``."""
    demo = sub.add_parser(
        "demo",
        help="run the all-in-one server with simulated users chatting (no database needed)",
        description="Start the all-in-one server on the embedded defaults, with simulated users who chat "
        "(text, image, voice, location), switch networks, go offline and come back, and get notifications "
        "and a friend's profile change. Prints every event, then a summary whose last line is "
        "'demo: sent S, delivered D, lost L, duplicates U'. Exits non-zero if anything was lost or shown "
        "twice. Ctrl-C stops it early.",
    )
    demo.add_argument("--seconds", type=float, default=10.0, help="how long the users chat (default 10)")
    demo.add_argument("--users", type=int, default=4, help="how many users, 3-16 (default 4)")
    demo.add_argument("--seed", type=int, help="seed of the random choices (default: a random one, printed)")
    demo.add_argument("--quiet", action="store_true", help="print only the summary")

    send = sub.add_parser(
        "send",
        help="send one text message",
        description="Log in, send one text, print the server's id and sequence for it, and log out.",
    )
    _connection_options(send, "cli-send")
    send.add_argument("--to", required=True, metavar="UID", help="the receiver")
    send.add_argument(
        "--instant", action="store_true", help="instant class: not stored; fails if the receiver is offline"
    )
    send.add_argument("--json", action="store_true", help="print the acknowledgement as one JSON object")
    send.add_argument("text", metavar="TEXT", help="the message")

    listen = sub.add_parser(
        "listen",
        help="print incoming events as JSON lines",
        description="Log in and print every event (messages, receipts, notifications, presence, profile "
        "and friend changes) as one JSON object per line, flushed at once. Messages stored while the "
        "device was away come first. Runs until Ctrl-C or --count events.",
    )
    _connection_options(listen, "cli-listen")
    listen.add_argument("--count", type=_positive_int, metavar="N", help="stop after N events")
    listen.add_argument("--all", action="store_true", help="also connection state, network and send events")

    chat = sub.add_parser(
        "chat",
        help="interactive terminal chat",
        description="Log in and chat: each line typed is sent to the current receiver (--to, or /to UID); "
        "incoming messages are printed as they arrive. /to UID changes the receiver, /quit (or end of "
        "input) ends.",
    )
    _connection_options(chat, "cli-chat")
    chat.add_argument("--to", metavar="UID", help="who the lines typed go to")


# ---------------------------------------------------------------------------------------------------- running


def run(args: argparse.Namespace) -> int:
    """Run one of :data:`COMMANDS`; returns the exit status (errors are printed as one line)."""
    try:
        if args.command == "demo":
            return _demo(args)
        password = _password(args)
        server = _server_url(args.server)
        if args.command == "send":
            return _run(_send, args, server, password)
        if args.command == "listen":
            return _run(_listen, args, server, password)
        if args.command == "chat":
            return _run(_chat, args, server, password)
    except ClientCommandError as exc:
        print(f"imsdk: {exc}", file=sys.stderr, flush=True)
        return exc.status
    raise ValueError(f"not a client command: {args.command!r}")


def _demo(args: argparse.Namespace) -> int:
    from imsdk_server._demo import DemoOptions, demo_main

    try:
        options = DemoOptions(seconds=args.seconds, users=args.users, seed=args.seed, quiet=args.quiet)
    except ValueError as exc:
        raise ClientCommandError(str(exc), EXIT_USAGE) from None
    return demo_main(options)


def _password(args: argparse.Namespace) -> str:
    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
    if not password:
        raise ClientCommandError(f"no password: give --password or set {PASSWORD_ENV}", EXIT_USAGE)
    return str(password)


def _server_url(server: str) -> str:
    if not server.startswith(("http://", "https://")) or len(server.split("://", 1)[1].strip("/")) == 0:
        raise ClientCommandError(f"--server must be an http:// or https:// URL, not {server!r}", EXIT_USAGE)
    return server.rstrip("/")


Command = Callable[[argparse.Namespace, "Client"], Any]


def _run(command: Command, args: argparse.Namespace, server: str, password: str) -> int:
    """Connect as ``--as`` and run ``command``; SIGINT and SIGTERM end it cleanly (status 0)."""
    import anyio

    async def main() -> int:
        import signal

        from imsdk_client import Client, IMClientError

        status = 0
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with anyio.create_task_group() as tg:

                async def stop_on_signal() -> None:
                    async for _ in signals:
                        tg.cancel_scope.cancel()
                        return

                tg.start_soon(stop_on_signal)
                try:
                    client = Client(
                        server,
                        args.uid,
                        password=password,
                        device=args.device,
                        network=args.network,
                        ready_timeout=args.timeout,
                        http_timeout=args.timeout,
                        linger=1.0,
                    )
                    async with client:
                        status = int(await command(args, client) or 0)
                except IMClientError as exc:
                    raise ClientCommandError(describe_error(exc, args, server)) from None
                except OSError as exc:
                    raise ClientCommandError(f"cannot reach {server}: {_reason(exc)}") from None
                tg.cancel_scope.cancel()
        return status

    try:
        return anyio.run(main, backend="asyncio")
    except BaseExceptionGroup as group:
        for leaf in _leaves(group):
            if isinstance(leaf, ClientCommandError):
                raise leaf from None
        raise


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _reason(exc: BaseException) -> str:
    """The most telling words of a connection failure (``connection refused``, ``timed out``…)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno).lower()
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        text = str(cause)
        if "refused" in text.lower():
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def describe_error(exc: BaseException, args: argparse.Namespace, server: str) -> str:
    """One line for a client error, naming what went wrong in the user's words (and the wire code)."""
    from imsdk_client import (
        ConnectTimeout,
        InvalidCredentials,
        ReceiverOffline,
        TransportError,
        UnknownReceiver,
    )

    wire = getattr(exc, "code", None)
    code = f" ({wire.name})" if wire is not None else ""
    to = getattr(args, "to", None) or "the receiver"
    if isinstance(exc, InvalidCredentials):
        return f"{args.uid}: wrong uid or password{code}"
    if isinstance(exc, ReceiverOffline):
        return f"{to} is offline: the instant message was not delivered{code}"
    if isinstance(exc, UnknownReceiver):
        return f"no user {to}{code}"
    if isinstance(exc, TransportError):
        return f"cannot reach {server}: {_reason(exc)}"
    if isinstance(exc, ConnectTimeout):
        return f"no session with {server}: {exc}"
    return f"{exc}{code}"


# ---------------------------------------------------------------------------------------------------- send


async def _send(args: argparse.Namespace, client: Client) -> int:
    import json

    from imsdk_proto.messages import SendStatus

    ack = await client.send_text(args.to, args.text, instant=args.instant)
    status = SendStatus.Name(ack.status).removeprefix("SEND_STATUS_").lower()
    if args.json:
        print(json.dumps(_ack_json(ack) | {"to": args.to}), flush=True)
    elif args.instant:
        print(f"sent to {args.to}: {status} (instant: not stored)", flush=True)
    else:
        print(f"sent to {args.to}: server id {ack.server_msg_id}, seq {ack.conv_seq} ({status})", flush=True)
    return 0


def _ack_json(ack: SendAcked) -> dict[str, Any]:
    from imsdk_proto.messages import SendStatus

    return {
        "msg_id": ack.msg_id,
        "server_msg_id": ack.server_msg_id,
        "seq": ack.conv_seq,
        "timestamp_ms": ack.timestamp_ms,
        "status": SendStatus.Name(ack.status).removeprefix("SEND_STATUS_").lower(),
    }


# ---------------------------------------------------------------------------------------------------- listen


def event_json(event: Event, *, everything: bool = False) -> dict[str, Any] | None:
    """One event as a JSON-ready object (``type`` first), or ``None`` for events ``listen`` leaves out
    (connection state, network and send results, unless ``everything``)."""
    from imsdk_client import (
        FriendChanged,
        MessageReceived,
        NetworkChanged,
        NotificationReceived,
        PresenceChanged,
        ProfileUpdated,
        PushReceived,
        ReceiptReceived,
        SendAcked,
        SendFailed,
        StateChanged,
    )
    from imsdk_proto.messages import FriendEventKind, PresenceEventKind

    if isinstance(event, MessageReceived):
        return {
            "type": "message",
            "from": event.sender_uid,
            "device": event.sender_device,
            "conversation": event.conversation,
            "msg_id": event.msg_id,
            "server_msg_id": event.server_msg_id,
            "seq": event.conv_seq,
            "sent_at_ms": event.sent_at_ms,
            "instant": event.instant,
            "content": content_json(event.content),
        }
    if isinstance(event, NotificationReceived):
        n = event.notification
        out: dict[str, Any] = {
            "type": "notification",
            "kind": n.type,
            "notify_id": n.notify_id,
            "merge_key": n.merge_key,
            "created_at_ms": n.created_at_ms,
        }
        try:
            out["payload"] = n.payload.decode("utf-8")
        except UnicodeDecodeError:
            out["payload_b64"] = base64.b64encode(n.payload).decode("ascii")
        return out
    if isinstance(event, ReceiptReceived):
        return {
            "type": "receipt",
            "kind": event.kind,
            "from": event.peer_uid,
            "up_to_seq": event.up_to_conv_seq,
            "server_msg_ids": list(event.server_msg_ids),
            "time_ms": event.time_ms,
        }
    if isinstance(event, PresenceChanged):
        return {
            "type": "presence",
            "uid": event.uid,
            "device": event.device,
            "online": event.online,
            "kind": _enum_name(PresenceEventKind, event.kind, "PRESENCE_EVENT_KIND_"),
            "time_ms": event.time_ms,
        }
    if isinstance(event, ProfileUpdated):
        p = event.profile
        return {
            "type": "profile",
            "uid": p.uid,
            "nickname": p.nickname,
            "signature": p.signature,
            "version": p.version,
            "updated_at_ms": p.updated_at_ms,
        }
    if isinstance(event, FriendChanged):
        return {
            "type": "friend",
            "kind": _enum_name(FriendEventKind, event.kind, "FRIEND_EVENT_KIND_"),
            "uid": event.uid,
            "friend": event.friend_uid,
            "time_ms": event.time_ms,
        }
    if isinstance(event, PushReceived):
        return {
            "type": "push",
            "push_id": event.push_id,
            "title": event.title,
            "body": event.body,
            "payload_b64": base64.b64encode(event.payload).decode("ascii"),
            "sent_at_ms": event.sent_at_ms,
        }
    if not everything:
        return None
    if isinstance(event, StateChanged):
        return {
            "type": "state",
            "old": event.old.value,
            "new": event.new.value,
            "reason": event.reason,
            "code": event.code.name if event.code is not None else None,
        }
    if isinstance(event, NetworkChanged):
        return {"type": "network", "old": event.old.value, "new": event.new.value}
    if isinstance(event, SendAcked):
        return {"type": "sent", **_ack_json(event)}
    if isinstance(event, SendFailed):
        code = event.code.name if event.code is not None else None
        return {"type": "send_failed", "msg_id": event.msg_id, "code": code, "message": event.message}
    return {"type": type(event).__name__}


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    try:
        return str(enum.Name(value)).removeprefix(prefix).lower()
    except ValueError:
        return str(value)


def content_json(content: Any) -> dict[str, Any]:
    """A message's content as a JSON-ready object (``kind``: text, image, voice or location)."""
    from imsdk_proto.messages import ChatImage, ChatLocation, ChatText, ChatVoice

    if isinstance(content, ChatText):
        return {"kind": "text", "text": content.text}
    if isinstance(content, ChatImage):
        ref = content.image
        return {
            "kind": "image",
            "media": ref.sha256.hex(),
            "mime": ref.mime,
            "size": ref.size,
            "width": ref.width,
            "height": ref.height,
            "caption": content.caption,
        }
    if isinstance(content, ChatVoice):
        ref = content.voice
        return {
            "kind": "voice",
            "media": ref.sha256.hex(),
            "mime": ref.mime,
            "size": ref.size,
            "duration_ms": content.duration_ms,
        }
    if isinstance(content, ChatLocation):
        return {
            "kind": "location",
            "lat": content.lat,
            "lng": content.lng,
            "accuracy_m": content.accuracy_m,
            "label": content.label,
        }
    return {"kind": type(content).__name__}


async def _listen(args: argparse.Namespace, client: Client, out: TextIO | None = None) -> int:
    import json

    stream = out or sys.stdout
    printed = 0
    async for event in client.events():
        obj = event_json(event, everything=args.all)
        if obj is None:
            continue
        stream.write(json.dumps(obj, ensure_ascii=False) + "\n")
        stream.flush()
        printed += 1
        if args.count is not None and printed >= args.count:
            break
    return 0


# ---------------------------------------------------------------------------------------------------- chat


def chat_line(event: Event, now: datetime | None = None) -> str | None:
    """How ``imsdk chat`` shows an incoming event (``None``: not shown)."""
    from imsdk_client import (
        ConnectionState,
        MessageReceived,
        NotificationReceived,
        ProfileUpdated,
        StateChanged,
    )
    from imsdk_server._demo import describe_content

    stamp = (now or datetime.now()).strftime("%H:%M:%S")
    if isinstance(event, MessageReceived):
        kind, _, rest = describe_content(event.content).partition(" ")
        body = event.content.text if kind == "text" else f"[{kind}] {rest.strip()}"  # type: ignore[union-attr]
        return f"[{stamp}] {event.sender_uid}: {body}"
    if isinstance(event, NotificationReceived):
        n = event.notification
        return f"[{stamp}] * notification {n.type}: {n.payload.decode('utf-8', 'replace')}"
    if isinstance(event, ProfileUpdated):
        return f"[{stamp}] * {event.profile.uid} is now {event.profile.nickname!r}"
    if isinstance(event, StateChanged) and event.new in (ConnectionState.BACKOFF, ConnectionState.READY):
        return f"[{stamp}] * connection {event.new.value}" + (f" ({event.reason})" if event.reason else "")
    return None


async def _chat(args: argparse.Namespace, client: Client) -> int:
    import anyio

    from imsdk_client import ConnectionState, IMClientError, MessageReceived, StateChanged

    out = sys.stdout
    to: str | None = args.to

    def say(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    target = f"to {to}" if to else "(no receiver yet: /to UID)"
    say(f"* chatting as {args.uid} {target}; /to UID changes the receiver, /quit ends")

    async def show_incoming() -> None:
        started = False  # the connection's first steps (up to ready) are not news
        async for event in client.events():
            if isinstance(event, StateChanged) and not started:
                started = event.new is ConnectionState.READY
                continue
            line = chat_line(event)
            if line is not None and not (isinstance(event, MessageReceived) and event.sender_uid == args.uid):
                say(line)

    async with anyio.create_task_group() as tg:
        tg.start_soon(show_incoming)
        async for line in _stdin_lines():
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            if text.startswith("/to"):
                parts = text.split()
                if len(parts) != 2:
                    say("* usage: /to UID")
                else:
                    to = parts[1]
                    say(f"* now writing to {to}")
                continue
            if text.startswith("/"):
                say("* commands: /to UID, /quit")
                continue
            if to is None:
                say("* no receiver: type /to UID first")
                continue
            try:
                ack = await client.send_text(to, text)
            except IMClientError as exc:
                say(f"* not sent: {describe_error(exc, argparse.Namespace(uid=args.uid, to=to), '')}")
            else:
                say(f"* sent to {to} (#{ack.conv_seq})")
        tg.cancel_scope.cancel()
    return 0


async def _stdin_lines() -> Any:
    """Lines of standard input as they come, without a thread (the loop waits for the descriptor)."""
    import anyio

    fd = sys.stdin.fileno()
    buffer = b""
    while True:
        await anyio.wait_readable(fd)
        chunk = os.read(fd, 65536)
        if not chunk:
            if buffer:
                yield buffer.decode("utf-8", "replace")
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace")
