"""Start and stop a multi-process imsdk cluster on MySQL, Redis and ZooKeeper, one process per role.

    python examples/cluster/cluster.py start     # auth, media, location, router, notify, access manager,
                                                 # and two access servers; waits until each is healthy
    python examples/cluster/cluster.py status
    python examples/cluster/cluster.py stop      # SIGTERM in reverse order (access servers first)

Every process is ``imsdk serve <role> --config cluster.toml`` with its own ``--http`` (and ``--tcp`` for the
access servers). The backends default to MySQL at 127.0.0.1:3306 (root, database ``test``), Redis at
127.0.0.1:6379 and ZooKeeper at 127.0.0.1:2181; ``--mysql``, ``--redis`` and ``--zookeeper`` override them.
The router checks image and voice references at the media process (``--media``, with a token it mints from
the key ring). The run directory (``--run-dir``, default ``./imsdk-cluster``) keeps the auth server's key
ring (which the other roles read), the media blobs, one log per process and ``cluster.json``: the
processes and addresses. ``POST /v1/notifications`` of the notify process takes the key in
``<run-dir>/admin-key``.

Clients log in at the auth URL, get their access points from the access manager's URL and upload media to
the media URL (in production a reverse proxy puts the three behind one base URL).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "cluster.toml"
IMSDK = [sys.executable, "-c", "import sys; from imsdk_server._cli import main; sys.exit(main())"]
#: (name, role) in start order; the groups between blank entries start together.
GROUPS: list[list[tuple[str, str]]] = [
    [("auth", "auth")],  # writes the key ring the others read
    [("media", "media"), ("location", "location"), ("router", "router"), ("notify", "notify")],
    [("access-manager", "access-manager"), ("access-1", "access"), ("access-2", "access")],
]
HEALTH_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def plan(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each process' role and addresses."""
    names = [name for group in GROUPS for name, _ in group]
    processes: dict[str, dict[str, Any]] = {}
    tcp_offset = 0
    for i, (name, role) in enumerate((n, r) for group in GROUPS for n, r in group):
        http = free_port(args.host) if args.base_port == 0 else args.base_port + i
        entry: dict[str, Any] = {"role": role, "http": f"{args.host}:{http}"}
        if role == "access":
            tcp_offset += 1
            tcp = free_port(args.host) if args.base_port == 0 else args.base_port + len(names) + tcp_offset
            entry["tcp"] = f"{args.host}:{tcp}"
        processes[name] = entry
    return processes


def command(
    name: str, entry: dict[str, Any], args: argparse.Namespace, run_dir: Path, urls: dict[str, str]
) -> list[str]:
    cmd = [*IMSDK, "serve", entry["role"], "--config", str(CONFIG), "--http", entry["http"], "--name", name]
    if args.mysql:
        cmd += ["--database", args.mysql]
    if args.redis:
        cmd += ["--queue", args.redis, "--cache", args.redis]
    if args.zookeeper:
        cmd += ["--registry", args.zookeeper]
    cmd += ["--key-file", str(run_dir / "auth-keys.json")]
    if entry["role"] == "media":
        cmd += ["--data", str(run_dir)]
    if entry["role"] == "router":  # media references are checked at the media process
        cmd += ["--media", urls["media"]]
    if entry["role"] == "access":
        cmd += ["--tcp", entry["tcp"], "--auth", urls["auth"]]
    return cmd


def healthy(entry: dict[str, Any]) -> bool:
    try:
        return httpx.get(f"http://{entry['http']}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def start(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir).resolve()
    state_file = run_dir / "cluster.json"
    if state_file.exists():
        print(f"cluster: {state_file} exists: stop the running cluster first", file=sys.stderr)
        return 1
    run_dir.mkdir(parents=True, exist_ok=True)
    key_file = run_dir / "admin-key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(16))
        key_file.chmod(0o600)
    env = {**os.environ, "IMSDK_ADMIN_KEY": key_file.read_text().strip()}
    processes = plan(args)
    auth_url = f"http://{processes['auth']['http']}"
    urls = {"auth": auth_url, "media": f"http://{processes['media']['http']}"}
    state = {"run_dir": str(run_dir), "auth": auth_url, "processes": processes}
    for group in GROUPS:
        for name, _ in group:
            entry = processes[name]
            with open(run_dir / f"{name}.log", "ab") as log:
                proc = subprocess.Popen(
                    command(name, entry, args, run_dir, urls),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    start_new_session=True,  # not stopped by a Ctrl-C meant for this script
                )
            entry["pid"] = proc.pid
            state_file.write_text(json.dumps(state, indent=2))
        deadline = time.monotonic() + HEALTH_TIMEOUT
        for name, _ in group:
            entry = processes[name]
            while not healthy(entry):
                failed = _exited(entry["pid"])
                if failed or time.monotonic() > deadline:
                    lines = (run_dir / f"{name}.log").read_text(errors="replace").strip().splitlines()
                    why = lines[-1] if lines else "no output"
                    print(f"cluster: {name} did not start: {why}", file=sys.stderr)
                    stop(args)
                    return 1
                time.sleep(0.1)
            print(f"cluster: {name:<15} pid {entry['pid']:<7} http {entry['http']}"
                  + (f"  tcp {entry['tcp']}" if "tcp" in entry else ""), flush=True)  # fmt: skip
    print(f"cluster: ready; auth {auth_url}, access manager http://{processes['access-manager']['http']}, "
          f"media http://{processes['media']['http']}", flush=True)  # fmt: skip
    return 0


def _exited(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child (started by an earlier run): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return done == pid


def stop(args: argparse.Namespace) -> int:
    state_file = Path(args.run_dir).resolve() / "cluster.json"
    if not state_file.exists():
        print("cluster: not running", file=sys.stderr)
        return 0
    state = json.loads(state_file.read_text())
    status = 0
    for group in reversed(GROUPS):  # access servers first: they drain their links to the others
        running = {}
        for name, _ in group:
            pid = state["processes"].get(name, {}).get("pid")
            if pid is not None and not _exited(pid):
                os.kill(pid, signal.SIGTERM)
                running[name] = pid
        deadline = time.monotonic() + STOP_TIMEOUT
        while running:
            for name, pid in list(running.items()):
                if _exited(pid):
                    print(f"cluster: {name} stopped", flush=True)
                    del running[name]
                elif time.monotonic() > deadline:
                    print(f"cluster: {name} did not stop in {STOP_TIMEOUT:g} s: killed", file=sys.stderr)
                    os.kill(pid, signal.SIGKILL)
                    del running[name]
                    status = 1
            time.sleep(0.05)
    state_file.unlink()
    return status


def status(args: argparse.Namespace) -> int:
    state_file = Path(args.run_dir).resolve() / "cluster.json"
    if not state_file.exists():
        print("cluster: not running")
        return 1
    state = json.loads(state_file.read_text())
    ok = True
    for name, entry in state["processes"].items():
        alive = not _exited(entry["pid"])
        health = "healthy" if alive and healthy(entry) else ("running" if alive else "exited")
        ok = ok and health == "healthy"
        print(f"{name:<15} pid {entry['pid']:<7} http {entry['http']:<22} {health}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--run-dir", default="imsdk-cluster", help="logs, key ring, media, cluster.json")
    parser.add_argument("--host", default="127.0.0.1", help="address every process listens on")
    parser.add_argument("--base-port", type=int, default=8100, help="first HTTP port (0: any free ports)")
    parser.add_argument("--mysql", help="mysql://user:password@host:port/db (default: cluster.toml's)")
    parser.add_argument("--redis", help="redis://host:port/db?prefix=… (default: cluster.toml's)")
    parser.add_argument("--zookeeper", help="zookeeper://host:port/root (default: cluster.toml's)")
    args = parser.parse_args(argv)
    return {"start": start, "stop": stop, "status": status}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
