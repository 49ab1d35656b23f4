"""A minimal chat client on the imsdk client SDK.

    IMSDK_PASSWORD=secret123 python examples/chat_client.py --server http://127.0.0.1:8080 --as alice --to bob

Each line read from standard input is sent to ``--to``; every message that arrives is printed as
``<sender>: <text>``. At the end of the input it waits ``--wait`` seconds for replies, then closes.
``--register`` creates the account first (if it does not exist yet).
"""

from __future__ import annotations

import argparse
import os
import sys

import anyio

from imsdk_client import AuthClient, Client, Conflict, MessageReceived


async def chat(server: str, uid: str, password: str, to: str, wait: float) -> None:
    async with Client(server, uid, password=password, device="example") as client:

        async def print_incoming() -> None:
            async for event in client.events():
                if isinstance(event, MessageReceived):
                    text = getattr(event.content, "text", None) or f"[{type(event.content).__name__}]"
                    print(f"{event.sender_uid}: {text}", flush=True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(print_incoming)
            stdin = anyio.wrap_file(sys.stdin)
            async for line in stdin:
                if line.strip():
                    ack = await client.send_text(to, line.strip())  # returns once the server stored it
                    print(f"sent #{ack.conv_seq}", flush=True)
            await anyio.sleep(wait)
            tg.cancel_scope.cancel()


async def register(server: str, uid: str, password: str) -> None:
    async with AuthClient(server) as auth:
        try:
            await auth.register(uid, password, nickname=uid)
        except Conflict:
            pass  # it exists already


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", default="http://127.0.0.1:8080")
    parser.add_argument("--as", dest="uid", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--wait", type=float, default=1.0, help="seconds to wait for replies at the end")
    parser.add_argument("--register", action="store_true", help="create the account first")
    args = parser.parse_args()
    password = os.environ.get("IMSDK_PASSWORD", "")
    if not password:
        parser.error("set IMSDK_PASSWORD")
    if args.register:
        anyio.run(register, args.server, args.uid, password)
    anyio.run(chat, args.server, args.uid, password, args.to, args.wait)
    return 0


if __name__ == "__main__":
    sys.exit(main())
