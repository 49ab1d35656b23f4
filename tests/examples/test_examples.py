"""The examples run as written: the all-in-one server from Python, and the minimal chat client against it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.allinone._wire import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PASSWORD = "example-password"


def run_chat(server: str, uid: str, to: str, typed: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "chat_client.py"),
            "--server",
            server,
            "--as",
            uid,
            "--to",
            to,
            *extra,
        ],
        input=typed,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "IMSDK_PASSWORD": PASSWORD},
    )


@pytest.fixture
def allinone(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    http, tcp = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "allinone_server.py"),
            "--http",
            f"127.0.0.1:{http}",
            "--tcp",
            f"127.0.0.1:{tcp}",
            "--data",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first == f"serving on http://127.0.0.1:{http} (clients connect to tcp 127.0.0.1:{tcp})\n", (
            first + (proc.stderr.read() if proc.stderr else "")
        )
        yield proc, f"http://127.0.0.1:{http}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_allinone_server_and_chat_client(allinone: tuple[subprocess.Popen[str], str], tmp_path: Path) -> None:
    proc, url = allinone
    assert httpx.get(f"{url}/healthz", timeout=5).json()["status"] == "ok"

    r = httpx.post(
        f"{url}/v1/users", json={"uid": "bob", "password": PASSWORD, "nickname": "Bob"}, timeout=10
    )
    assert r.status_code in (200, 201), r.text
    # alice (registered by the example) writes to bob, who has never been online: stored
    alice = run_chat(url, "alice", "bob", "hello bob\nare you there?\n", "--register", "--wait", "0")
    assert alice.returncode == 0, alice.stderr
    assert alice.stdout.splitlines() == ["sent #1", "sent #2"]

    # bob comes online: alice's messages arrive first, then his reply is stored
    bob = run_chat(url, "bob", "alice", "hi alice!\n", "--register", "--wait", "0.5")
    assert bob.returncode == 0, bob.stderr
    lines = bob.stdout.splitlines()
    assert lines[:2] == ["alice: hello bob", "alice: are you there?"]
    assert lines[2:] == ["sent #3"]

    # alice reads the reply from the store at her next login
    again = run_chat(url, "alice", "bob", "", "--wait", "0.5")
    assert again.stdout.splitlines() == ["bob: hi alice!"]

    # SIGTERM stops the server in order, and the data directory keeps the users
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert stdout.strip().endswith("stopped")
    assert "Traceback" not in stderr
    assert (tmp_path / "imsdk.sqlite3").exists()


def test_chat_client_needs_a_password() -> None:
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / "chat_client.py"), "--as", "a", "--to", "b"],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if k != "IMSDK_PASSWORD"},
    )
    assert run.returncode == 2
    assert "set IMSDK_PASSWORD" in run.stderr


@pytest.mark.parametrize("name", ["allinone_server.py", "chat_client.py"])
def test_examples_explain_themselves(name: str) -> None:
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--help"], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage:")
    assert "IMSDK" in run.stdout or "--http" in run.stdout
