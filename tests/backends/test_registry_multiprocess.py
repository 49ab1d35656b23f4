"""Two OS processes that know nothing of each other but the ZooKeeper address find each other through it."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ZooKeeperTarget

PROCS = Path(__file__).parent / "_procs"
REPO = Path(__file__).resolve().parents[2]


def _spawn(script: str, target: ZooKeeperTarget) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(PROCS / script), target.hosts, target.root, "mp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _readline(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no output in time from {proc.args!r}")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            line = proc.stdout.readline()
            if not line:
                err = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"{proc.args!r} exited with {proc.wait()}: {err}")
            return line.strip()


@pytest.mark.zookeeper
@pytest.mark.slow
def test_processes_find_each_other_only_through_zookeeper(zookeeper_target: ZooKeeperTarget) -> None:
    deadline = time.monotonic() + 15
    announcer = _spawn("announce.py", zookeeper_target)
    discoverer: subprocess.Popen[str] | None = None
    try:
        ready = _readline(announcer, deadline)
        assert ready.startswith("READY "), ready
        server_id = int(ready.split()[1])
        discoverer = _spawn("discover.py", zookeeper_target)
        # The discoverer got the address from ZooKeeper, connected and exchanged a line.
        assert _readline(discoverer, deadline) == f"GOT {server_id} echo:hello"
        announcer.kill()  # no clean shutdown: only the session's expiry removes the entry
        announcer.wait()
        assert _readline(discoverer, deadline) == "GONE"
        assert discoverer.wait(timeout=max(0.1, deadline - time.monotonic())) == 0
    finally:
        for proc in (announcer, discoverer):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc is not None:
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
