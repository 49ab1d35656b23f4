"""Run every imsdk server role in one Python process, on the embedded stores (no database needed).

    python examples/allinone_server.py --http 127.0.0.1:8080 --tcp 127.0.0.1:9000 --data ./imsdk-data

Clients use the HTTP address as their server URL (login, access points, media, notifications); the access
manager hands them the TCP address. Ctrl-C or SIGTERM stops the server in order. The same server runs with
``imsdk serve all``; this file shows how to embed it in a program of your own.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import anyio

from imsdk_server.allinone import AllInOne, AllInOneConfig
from imsdk_server.config import parse_host_port


async def serve(config: AllInOneConfig) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with AllInOne(config) as server:  # every role: auth, media, location, router, notify, ...
            assert server.http_address is not None
            assert server.tcp_address is not None
            http_host, http_port = server.http_address
            tcp_host, tcp_port = server.tcp_address
            print(f"serving on http://{http_host}:{http_port} (clients connect to tcp {tcp_host}:{tcp_port})")
            print("Ctrl-C to stop", flush=True)
            async for _ in signals:
                break
    print("stopped", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--http", default="127.0.0.1:8080", help="HTTP services (default 127.0.0.1:8080)")
    parser.add_argument("--tcp", default="127.0.0.1:9000", help="client connections (default 127.0.0.1:9000)")
    parser.add_argument("--data", type=Path, help="keep users, messages and media here (default: in memory)")
    args = parser.parse_args()
    config = AllInOneConfig(
        http=parse_host_port(args.http),
        tcp=parse_host_port(args.tcp),
        data=args.data,
        # The key of POST /v1/notifications for trusted back-ends; without one that endpoint is off.
        admin_key=os.environ.get("IMSDK_ADMIN_KEY", ""),
    )
    anyio.run(serve, config, backend="asyncio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
