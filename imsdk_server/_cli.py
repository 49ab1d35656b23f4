"""The ``imsdk`` command line.

Commands::

    imsdk serve <role|all> [--config FILE] [--http HOST:PORT] [--tcp HOST:PORT] [--data DIR]
                           [--queue URL] [--registry URL] [--cache URL] [--database URL] ...
    imsdk user add UID [--password PW | $IMSDK_PASSWORD] [--nickname NAME] [--server URL]
    imsdk demo [--seconds S] [--users N] [--seed N] [--quiet]
    imsdk send --as UID --to UID TEXT | imsdk listen --as UID | imsdk chat --as UID   (see _cli_client)

Errors print one line on stderr and exit non-zero: 2 for a bad command line or configuration, 1 for a failure
while running (a port in use, a server that cannot be reached, a backend that is down). Everything heavy is
imported only when a command runs, so ``imsdk --help`` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from imsdk_server import _cli_client

if TYPE_CHECKING:
    from imsdk_server.allinone import AllInOneConfig

#: The roles ``imsdk serve`` accepts; ``all`` runs every one of them in one process.
SERVE_ROLES: tuple[str, ...] = (
    "all",
    "auth",
    "media",
    "access",
    "access-manager",
    "location",
    "router",
    "notify",
)
DEFAULT_SERVER = "http://127.0.0.1:8080"
PASSWORD_ENV = "IMSDK_PASSWORD"
#: Where ``imsdk serve`` reads the administration key of ``POST /v1/notifications`` from, when the
#: configuration file does not set ``admin_key`` (an environment variable stays out of the process list).
ADMIN_KEY_ENV = "IMSDK_ADMIN_KEY"

EXIT_FAILURE = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A failure to report as one line; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``imsdk: <what is wrong> (see imsdk … --help)``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="imsdk", description="imsdk: instant-messaging toolkit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    _cli_client.add_parsers(sub)  # demo, send, listen, chat

    serve = sub.add_parser(
        "serve",
        help="run a server role, or every role in one process",
        description="Run one server role, or all of them in one process. Options override the [server] "
        "table of --config; the file may also hold [auth], [media], [access], [access_manager], "
        "[location], [router] and [notify] tables. The key of POST /v1/notifications comes from "
        f"${ADMIN_KEY_ENV} unless the file sets admin_key. Ctrl-C or SIGTERM stops it in order "
        "(not-ready, drain, close).",
    )
    serve.add_argument("role", choices=SERVE_ROLES, metavar="ROLE", help=f"one of: {', '.join(SERVE_ROLES)}")
    serve.add_argument("--config", metavar="FILE", help="TOML configuration file")
    serve.add_argument("--http", metavar="HOST:PORT", help="HTTP services (default 127.0.0.1:8080)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="client connections (default 127.0.0.1:9000)")
    serve.add_argument("--data", metavar="DIR", help="directory of the embedded stores (default: in memory)")
    serve.add_argument("--queue", metavar="URL", help="memory | redis://host:port/db?prefix=…")
    serve.add_argument("--registry", metavar="URL", help="memory | zookeeper://host:port/root")
    serve.add_argument("--cache", metavar="URL", help="memory | redis://host:port/db?prefix=…")
    serve.add_argument(
        "--database", metavar="URL", help="sqlite:///path | PATH | mysql://user:pw@host:port/db"
    )
    serve.add_argument("--auth", metavar="URL", help="auth server base URL for roles without one in-process")
    serve.add_argument("--key-file", metavar="FILE", help="the auth server's v2 key ring (auth-keys.json)")
    serve.add_argument("--media", metavar="URL", help="media service base URL, where a router checks media")
    serve.add_argument("--domain", help="deployment domain (default 'default')")
    serve.add_argument("--name", help="this process' name in the registry")
    serve.add_argument("--access-id", type=int, metavar="N", help="access server id (default: allocate)")
    serve.add_argument("--router-id", type=int, metavar="N", help="router id (default: allocate)")
    serve.add_argument("--notify-id", type=int, metavar="N", help="notify server id (default: allocate)")
    serve.add_argument("--advertised", metavar="HOST:PORT", help="address clients dial for --tcp")
    serve.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))

    user = sub.add_parser("user", help="manage users on a running server")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION", parser_class=_Parser)
    add = user_sub.add_parser("add", help="register a user")
    add.add_argument("uid")
    add.add_argument("--password", help=f"the password (default: ${PASSWORD_ENV})")
    add.add_argument("--nickname", help="display name (default: the uid)")
    add.add_argument("--server", default=DEFAULT_SERVER, metavar="URL", help=f"default {DEFAULT_SERVER}")
    add.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="HTTP timeout")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``imsdk`` console script; returns the process exit status."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        if args.command in _cli_client.COMMANDS:
            return _cli_client.run(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "user":
            return _user_add(args)
    except CommandError as exc:
        print(f"imsdk: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("imsdk: interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE


# -- serve ---------------------------------------------------------------------------------------------------


def _serve_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "http": args.http,
        "tcp": args.tcp,
        "data": args.data,
        "queue": args.queue,
        "registry": args.registry,
        "cache": args.cache,
        "database": args.database,
        "auth": args.auth,
        "key_file": args.key_file,
        "media_url": args.media,
        "domain": args.domain,
        "name": args.name,
        "access_id": args.access_id,
        "router_id": args.router_id,
        "notify_id": args.notify_id,
        "advertised": args.advertised,
    }


def _serve(args: argparse.Namespace) -> int:
    import logging

    import anyio

    from imsdk_server.allinone import ROLES, load_serve_config
    from imsdk_server.config import ConfigError

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_serve_config(args.config, _serve_overrides(args))
    except ConfigError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if not config.admin_key:
        config.admin_key = os.environ.get(ADMIN_KEY_ENV, "")
    roles = ROLES if args.role == "all" else (args.role,)
    options: dict[str, Any] = {}
    try:
        import uvloop  # noqa: F401

        options["use_uvloop"] = True
    except ImportError:  # pragma: no cover - uvloop is an optional speed-up
        pass
    try:
        anyio.run(_run_until_signal, config, roles, args.role, backend="asyncio", backend_options=options)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _as_command_error(exc) from None
    return 0


async def _run_until_signal(config: AllInOneConfig, roles: tuple[str, ...], label: str) -> None:
    import signal

    import anyio

    from imsdk_server.allinone import AllInOne

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with AllInOne(config, roles=roles) as server:
            where = [f"http://{_show(server.http_address)}"]
            if server.tcp_address is not None:
                where.append(f"tcp {_show(server.tcp_address)}")
            print(
                f"imsdk: serving {label} on {', '.join(where)} (Ctrl-C to stop)", file=sys.stderr, flush=True
            )
            async for _ in signals:
                print("imsdk: stopping", file=sys.stderr, flush=True)
                break
    print("imsdk: stopped", file=sys.stderr, flush=True)


def _show(address: tuple[str, int] | None) -> str:
    if address is None:
        return "-"
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for inner in exc.exceptions:
            out.extend(_leaves(inner))
        return out
    return [exc]


def _as_command_error(exc: BaseException) -> CommandError:
    """One line for a failure of ``imsdk serve`` (the most telling one when several tasks failed)."""
    from imsdk_server.backends.cache import CacheUnavailable
    from imsdk_server.backends.queue import QueueError
    from imsdk_server.backends.registry import RegistryError
    from imsdk_server.backends.sql import SQLError
    from imsdk_server.config import ConfigError

    leaves = [e for e in _leaves(exc) if not _is_cancellation(e)] or _leaves(exc)
    for leaf in leaves:
        if isinstance(leaf, ConfigError):
            return CommandError(str(leaf), EXIT_USAGE)
    leaf = leaves[0]
    if isinstance(leaf, OSError) and leaf.errno == errno.EADDRINUSE:
        return CommandError(_oserror_text(leaf))
    if isinstance(leaf, RegistryError):
        return CommandError(f"registry unavailable: {leaf}")
    if isinstance(leaf, QueueError):
        return CommandError(f"queue unavailable: {leaf}")
    if isinstance(leaf, CacheUnavailable):
        return CommandError(f"cache unavailable: {leaf}")
    if isinstance(leaf, SQLError):
        return CommandError(f"database unavailable: {leaf}")
    if isinstance(leaf, OSError):
        return CommandError(_oserror_text(leaf))
    return CommandError(f"{type(leaf).__name__}: {leaf}")


def _is_cancellation(exc: BaseException) -> bool:
    import asyncio

    return isinstance(exc, asyncio.CancelledError)  # ``imsdk serve`` runs on anyio's asyncio backend


def _oserror_text(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text if not exc.filename else f"{text}: {exc.filename}"


# -- user add ------------------------------------------------------------------------------------------------


def _user_add(args: argparse.Namespace) -> int:
    import httpx

    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
    if not password:
        raise CommandError(f"no password: give --password or set {PASSWORD_ENV}", EXIT_USAGE)
    server = args.server.rstrip("/")
    if not server.startswith(("http://", "https://")):
        raise CommandError(f"--server must be an http:// or https:// URL, not {args.server!r}", EXIT_USAGE)
    body = {"uid": args.uid, "password": password, "nickname": args.nickname or args.uid}
    try:
        with httpx.Client(base_url=server, timeout=args.timeout) as client:
            response = client.post("/v1/users", json=body)
    except httpx.TimeoutException:
        raise CommandError(f"{server} did not answer within {args.timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise CommandError(f"cannot reach {server}: {_reason(exc)}") from None
    if response.status_code in (200, 201):
        print(f"added user {args.uid}")
        return 0
    raise CommandError(f"user {args.uid} not added: {_error_text(response)}")


def _reason(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def _error_text(response: Any) -> str:
    from imsdk_proto.codes import ErrorCode

    try:
        error = response.json()["error"]
        message = str(error["message"])
        code = int(error["code"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
    try:
        name = ErrorCode.from_wire(code).name
    except ValueError:
        name = str(code)
    return f"{message} ({name}, HTTP {response.status_code})"
