"""``imsdk send``, ``imsdk listen`` and ``imsdk chat`` as processes against ``imsdk serve all``; their
one-line errors; and the JSON ``listen`` prints for every kind of event."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from imsdk_client import (
    ConnectionState,
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
from imsdk_client._core.events import Network
from imsdk_proto.codes import ErrorCode
from imsdk_proto.messages import ChatImage, ChatLocation, ChatText, ChatVoice, MediaRef, Notification, Profile
from imsdk_server._cli_client import event_json
from tests.allinone._wire import free_port

IMSDK = [sys.executable, "-c", "import sys; from imsdk_server._cli import main; sys.exit(main())"]
PASSWORD = "client-commands-pw"
TIMEOUT = 60


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("serve")
    http, tcp = free_port(), free_port()
    log = tmp / "serve.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            [*IMSDK, "serve", "all", "--http", f"127.0.0.1:{http}", "--tcp", f"127.0.0.1:{tcp}"],
            stdout=subprocess.DEVNULL,
            stderr=f,
        )
    url = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        for uid in ("alice", "bob", "carol", "dave", "erin"):
            r = httpx.post(f"{url}/v1/users", json={"uid": uid, "password": PASSWORD, "nickname": uid})
            assert r.status_code in (200, 201), r.text
        yield Server(proc, url, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def imsdk(
    *args: str, password: str | None = PASSWORD, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "IMSDK_PASSWORD"}
    if password is not None:
        env["IMSDK_PASSWORD"] = password
    return subprocess.run(
        [*IMSDK, *args], capture_output=True, text=True, timeout=TIMEOUT, env=env, input=stdin
    )


def background(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*IMSDK, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "IMSDK_PASSWORD": PASSWORD},
    )


def read_json_line(stream: IO[str] | None) -> dict[str, Any]:
    assert stream is not None
    line = stream.readline()
    assert line, "the process ended without printing"
    obj: dict[str, Any] = json.loads(line)
    return obj


@pytest.mark.slow
def test_send_then_listen_prints_the_stored_message(server: Server) -> None:
    sent = imsdk("send", "--as", "alice", "--to", "bob", "--server", server.url, "--json", "hello bob")
    assert sent.returncode == 0, sent.stderr
    ack = json.loads(sent.stdout)
    assert ack["status"] == "stored"
    assert ack["seq"] >= 1

    plain = imsdk("send", "--as", "alice", "--to", "bob", "--server", server.url, "second")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith("sent to bob: server id ")
    assert plain.stdout.endswith(f", seq {ack['seq'] + 1} (stored)\n")

    listen = imsdk("listen", "--as", "bob", "--server", server.url, "--count", "2")
    assert listen.returncode == 0, listen.stderr
    lines = [json.loads(line) for line in listen.stdout.splitlines()]
    assert [(m["type"], m["from"], m["content"]) for m in lines] == [
        ("message", "alice", {"kind": "text", "text": "hello bob"}),
        ("message", "alice", {"kind": "text", "text": "second"}),
    ]
    assert lines[0]["server_msg_id"] == ack["server_msg_id"]
    assert lines[0]["msg_id"] == ack["msg_id"]
    assert [m["seq"] for m in lines] == [ack["seq"], ack["seq"] + 1]


@pytest.mark.slow
def test_listen_prints_a_live_message_at_once(server: Server) -> None:
    listen = background("listen", "--as", "dave", "--server", server.url, "--all", "--count", "20")
    try:
        while read_json_line(listen.stdout) != {
            "type": "state", "old": "catching_up", "new": "ready", "reason": "caught up", "code": None,
        }:  # fmt: skip
            pass
        sent = imsdk("send", "--as", "erin", "--to", "dave", "--server", server.url, "--json", "live one")
        assert sent.returncode == 0, sent.stderr
        ack = json.loads(sent.stdout)
        event = read_json_line(listen.stdout)  # flushed at once: the process is still running
        assert listen.poll() is None
        assert event["type"] == "message"
        assert (event["from"], event["server_msg_id"], event["content"]["text"]) == (
            "erin",
            ack["server_msg_id"],
            "live one",
        )
        listen.send_signal(signal.SIGINT)  # Ctrl-C ends it cleanly
        _, stderr = listen.communicate(timeout=TIMEOUT)
        assert listen.returncode == 0, stderr
        assert stderr == ""
    finally:
        if listen.poll() is None:
            listen.kill()
            listen.wait()


@pytest.mark.slow
def test_chat_sends_typed_lines_and_follows_slash_commands(server: Server) -> None:
    typed = "first line\n/to carol\nto carol now\n/nonsense\n/to\n/quit\nnever sent\n"
    chat = imsdk("chat", "--as", "erin", "--to", "alice", "--server", server.url, stdin=typed)
    assert chat.returncode == 0, chat.stderr
    out = chat.stdout.splitlines()
    assert out[0] == "* chatting as erin to alice; /to UID changes the receiver, /quit ends"
    assert [line for line in out if line.startswith("* ")][1:] == [
        "* sent to alice (#1)",
        "* now writing to carol",
        "* sent to carol (#1)",
        "* commands: /to UID, /quit",
        "* usage: /to UID",
    ]
    got = imsdk("listen", "--as", "carol", "--server", server.url, "--count", "1")
    assert json.loads(got.stdout)["content"] == {"kind": "text", "text": "to carol now"}

    # incoming messages are printed as they come, and end of input ends the chat
    imsdk("send", "--as", "bob", "--to", "erin", "--server", server.url, "are you there?")
    chat = imsdk("chat", "--as", "erin", "--server", server.url, stdin="no receiver yet\n")
    assert chat.returncode == 0, chat.stderr
    assert any(line.endswith("] bob: are you there?") for line in chat.stdout.splitlines()), chat.stdout
    assert "* no receiver: type /to UID first" in chat.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "password", "status", "line"),
    [
        (["send", "--as", "alice", "--to", "bob", "x"], "wrong-password", 1,
         "imsdk: alice: wrong uid or password (BAD_CREDENTIALS)"),
        (["send", "--as", "nobody", "--to", "bob", "x"], PASSWORD, 1,
         "imsdk: nobody: wrong uid or password (BAD_CREDENTIALS)"),
        (["listen", "--as", "alice", "--password", "wrong-password"], None, 1,
         "imsdk: alice: wrong uid or password (BAD_CREDENTIALS)"),
        (["send", "--as", "alice", "--to", "carol", "--instant", "ping?"], PASSWORD, 1,
         "imsdk: carol is offline: the instant message was not delivered (RECEIVER_OFFLINE)"),
        (["send", "--as", "alice", "--to", "zed", "hi"], PASSWORD, 1,
         "imsdk: no user zed (UNKNOWN_RECEIVER)"),
        (["send", "--as", "alice", "--to", "bob", "x"], None, 2,
         "imsdk: no password: give --password or set IMSDK_PASSWORD"),
        (["chat", "--as", "alice"], "", 2, "imsdk: no password: give --password or set IMSDK_PASSWORD"),
        (["send", "--as", "alice", "--to", "bob", "--server", "127.0.0.1:8080", "x"], PASSWORD, 2,
         "imsdk: --server must be an http:// or https:// URL, not '127.0.0.1:8080'"),
        (["send", "--as", "alice", "--to", "bob", "--server", "{unreachable}", "x"], PASSWORD, 1,
         "imsdk: cannot reach {unreachable}: connection refused"),
        (["listen", "--as", "alice", "--server", "{unreachable}"], PASSWORD, 1,
         "imsdk: cannot reach {unreachable}: connection refused"),
    ],
)  # fmt: skip
def test_errors_are_one_line_and_a_non_zero_status(
    server: Server, args: list[str], password: str | None, status: int, line: str
) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    args = [a.replace("{unreachable}", unreachable) for a in args]
    if "--server" not in args:
        args += ["--server", server.url]
    run = imsdk(*args, password=password)
    assert (run.returncode, run.stdout, run.stderr) == (
        status,
        "",
        line.replace("{unreachable}", unreachable) + "\n",
    )


@pytest.mark.parametrize(
    "args",
    [
        ["send", "--to", "bob", "x"],  # no --as
        ["send", "--as", "alice", "x"],  # no --to
        ["listen", "--as", "alice", "--count", "0"],
        ["chat", "--as", "alice", "--network", "lte"],
    ],
)
def test_bad_command_lines_are_one_line_and_status_2(args: list[str]) -> None:
    run = imsdk(*args)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith("imsdk ")


# ---------------------------------------------------------------------------------------------------- JSON

REF = MediaRef(sha256=bytes(range(32)), mime="image/png", size=120, width=4, height=3)
VOICE = MediaRef(sha256=bytes(32), mime="audio/wav", size=900)


def message(content: Any, **extra: Any) -> MessageReceived:
    return MessageReceived("p2p:5:alice:bob", "alice", "phone", 7, 70, 3, 1000, content, **extra)


MSG = {
    "type": "message", "from": "alice", "device": "phone", "conversation": "p2p:5:alice:bob", "msg_id": 7,
    "server_msg_id": 70, "seq": 3, "sent_at_ms": 1000, "instant": False,
}  # fmt: skip


@pytest.mark.parametrize(
    ("event", "everything", "expected"),
    [
        (message(ChatText(text="hi")), False, MSG | {"content": {"kind": "text", "text": "hi"}}),
        (message(ChatText(text="now"), instant=True), False,
         MSG | {"instant": True, "content": {"kind": "text", "text": "now"}}),
        (message(ChatImage(image=REF, caption="cat")), False, MSG | {"content": {
            "kind": "image", "media": bytes(range(32)).hex(), "mime": "image/png", "size": 120, "width": 4,
            "height": 3, "caption": "cat"}}),
        (message(ChatVoice(voice=VOICE, duration_ms=1500)), False, MSG | {"content": {
            "kind": "voice", "media": "00" * 32, "mime": "audio/wav", "size": 900, "duration_ms": 1500}}),
        (message(ChatLocation(lat=1.5, lng=-2.25, accuracy_m=5.0, label="here")), False, MSG | {"content": {
            "kind": "location", "lat": 1.5, "lng": -2.25, "accuracy_m": 5.0, "label": "here"}}),
        (NotificationReceived(Notification(type="invite", payload=b"from bob", notify_id=9, created_at_ms=5)),
         False, {"type": "notification", "kind": "invite", "notify_id": 9, "merge_key": "",
                 "created_at_ms": 5, "payload": "from bob"}),
        (NotificationReceived(Notification(type="bin", payload=b"\xff\x00")), False,
         {"type": "notification", "kind": "bin", "notify_id": 0, "merge_key": "", "created_at_ms": 0,
          "payload_b64": "/wA="}),
        (ReceiptReceived("read", "bob", (70, 71), 4, 99), False,
         {"type": "receipt", "kind": "read", "from": "bob", "up_to_seq": 4, "server_msg_ids": [70, 71],
          "time_ms": 99}),
        (PresenceChanged(1, "bob", "phone", True, 1, time_ms=3), False,
         {"type": "presence", "uid": "bob", "device": "phone", "online": True, "kind": "online",
          "time_ms": 3}),
        (ProfileUpdated(Profile(uid="bob", nickname="Bobby", signature="s", version=2, updated_at_ms=8)),
         False,
         {"type": "profile", "uid": "bob", "nickname": "Bobby", "signature": "s", "version": 2,
          "updated_at_ms": 8}),
        (FriendChanged(1, "bob", "alice", 4), False,
         {"type": "friend", "kind": "added", "uid": "bob", "friend": "alice", "time_ms": 4}),
        (PushReceived(5, "title", "body", b"\x01", 6), False,
         {"type": "push", "push_id": 5, "title": "title", "body": "body", "payload_b64": "AQ==",
          "sent_at_ms": 6}),
        (StateChanged(ConnectionState.READY, ConnectionState.BACKOFF, "lost"), False, None),
        (StateChanged(ConnectionState.READY, ConnectionState.BACKOFF, "kicked",
                      ErrorCode.SERVER_SHUTTING_DOWN), True,
         {"type": "state", "old": "ready", "new": "backoff", "reason": "kicked",
          "code": "SERVER_SHUTTING_DOWN"}),
        (NetworkChanged(Network.WIFI, Network.G4), False, None),
        (NetworkChanged(Network.WIFI, Network.G4), True, {"type": "network", "old": "wifi", "new": "4g"}),
        (SendAcked(7, 70, 3, 1000, 1), True,
         {"type": "sent", "msg_id": 7, "server_msg_id": 70, "seq": 3, "timestamp_ms": 1000,
          "status": "stored"}),
        (SendFailed(7, ErrorCode.RECEIVER_OFFLINE, "offline"), True,
         {"type": "send_failed", "msg_id": 7, "code": "RECEIVER_OFFLINE", "message": "offline"}),
        (SendFailed(7, None), False, None),
    ],
)  # fmt: skip
def test_listen_json_of_every_event(event: Any, everything: bool, expected: dict[str, Any] | None) -> None:
    obj = event_json(event, everything=everything)
    assert obj == expected
    if obj is not None:
        assert json.loads(json.dumps(obj)) == obj
        assert next(iter(obj)) == "type"
