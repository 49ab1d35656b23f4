"""``imsdk`` in this process: every refusal is one line on stderr and a non-zero exit status."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from imsdk_server._cli import EXIT_FAILURE, EXIT_USAGE, _build_parser, _serve_overrides, main
from imsdk_server.allinone import load_serve_config
from tests.allinone._wire import free_port

BAD_TOML = "[server\nhttp = 1\n"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# (name, argv, files to write, exit status, a fragment of the one stderr line)
CASES: list[tuple[str, list[str], dict[str, str], int, str]] = [
    ("no command", [], {}, EXIT_USAGE, "required: COMMAND"),
    ("unknown command", ["frobnicate"], {}, EXIT_USAGE, "invalid choice: 'frobnicate'"),
    ("serve without role", ["serve"], {}, EXIT_USAGE, "required: ROLE"),
    ("unknown role", ["serve", "gateway"], {}, EXIT_USAGE, "invalid choice: 'gateway'"),
    (
        "bad --http",
        ["serve", "all", "--http", "localhost"],
        {},
        EXIT_USAGE,
        "expected HOST:PORT, got 'localhost'",
    ),
    ("port out of range", ["serve", "all", "--tcp", "127.0.0.1:70000"], {}, EXIT_USAGE, "port out of range"),
    (
        "bad --queue",
        ["serve", "all", "--queue", "kafka://h"],
        {},
        EXIT_USAGE,
        "--queue 'kafka://h': unknown scheme",
    ),
    ("bad --cache", ["serve", "all", "--cache", "redis://h/x"], {}, EXIT_USAGE, "database must be a number"),
    ("bad --registry", ["serve", "all", "--registry", "zookeeper:///r"], {}, EXIT_USAGE, "--registry"),
    ("bad --database", ["serve", "all", "--database", "pg://h/db"], {}, EXIT_USAGE, "unknown scheme 'pg'"),
    ("no db name", ["serve", "all", "--database", "mysql://h/"], {}, EXIT_USAGE, "names no database"),
    ("bad id", ["serve", "all", "--access-id", "x"], {}, EXIT_USAGE, "invalid int value"),
    ("missing file", ["serve", "all", "--config", "/nonexistent/imsdk.toml"], {}, EXIT_USAGE, "cannot read"),
    ("bad toml", ["serve", "all", "--config", "{bad}"], {"bad": BAD_TOML}, EXIT_USAGE, "bad.toml"),
    (
        "unknown table",
        ["serve", "all", "--config", "{t}"],
        {"t": "[server]\n[gateway]\nx = 1\n"},
        EXIT_USAGE,
        "unknown table(s) or key(s) gateway",
    ),
    (
        "unknown option",
        ["serve", "all", "--config", "{t}"],
        {"t": "[server]\nspeed = 11\n"},
        EXIT_USAGE,
        "unknown [server] option(s): speed",
    ),
    (
        "component table checked at start",
        ["serve", "all", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--config", "{t}"],
        {"t": "[access]\nidle_timeout = 'soon'\n"},
        EXIT_USAGE,
        "idle_timeout",
    ),
    (
        "no key ring",
        ["serve", "access-manager", "--http", "127.0.0.1:0", "--key-file", "/nonexistent/keys.json"],
        {},
        EXIT_USAGE,
        "no token key ring at /nonexistent/keys.json",
    ),
    (
        "bad --media",
        ["serve", "router", "--media", "media.local:8300"],
        {},
        EXIT_USAGE,
        "--media 'media.local:8300': expected the media service's base URL",
    ),
    (
        "bad media_url",
        ["serve", "router", "--config", "{t}"],
        {"t": '[server]\nmedia_url = "ftp://media"\n'},
        EXIT_USAGE,
        "--media 'ftp://media': expected the media service's base URL",
    ),
    (
        "a router given --media needs the key ring to mint its token",
        [
            "serve",
            "router",
            "--http",
            "127.0.0.1:0",
            "--media",
            "http://127.0.0.1:9",
            "--key-file",
            "/nonexistent/keys.json",
        ],
        {},
        EXIT_USAGE,
        "no token key ring at /nonexistent/keys.json",
    ),
    ("user add without password", ["user", "add", "bob"], {}, EXIT_USAGE, "no password: give --password"),
    (
        "user add with a bad server",
        ["user", "add", "bob", "--password", "pw", "--server", "ftp://h"],
        {},
        EXIT_USAGE,
        "--server must be an http:// or https:// URL",
    ),
    ("user without action", ["user"], {}, EXIT_USAGE, "required: ACTION"),
]


@pytest.mark.parametrize(("name", "argv", "files", "status", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_errors_are_one_line(
    name: str,
    argv: list[str],
    files: dict[str, str],
    status: int,
    fragment: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IMSDK_PASSWORD", raising=False)
    paths = {key: write(tmp_path, f"{key}.toml", text) for key, text in files.items()}
    argv = [arg.format(**paths) for arg in argv]
    assert main(argv) == status
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if " WARNING " not in line]  # log lines of started roles
    assert len(lines) == 1, err
    assert lines[0].startswith("imsdk"), lines
    assert fragment in lines[0]
    assert out == ""


def test_unreachable_server(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMSDK_PASSWORD", "from the environment")
    port = free_port()
    assert main(["user", "add", "bob", "--server", f"http://127.0.0.1:{port}"]) == EXIT_FAILURE
    _, err = capsys.readouterr()
    assert err == f"imsdk: cannot reach http://127.0.0.1:{port}: connection refused\n"


@pytest.mark.parametrize("which", ["http", "tcp"])
def test_port_in_use(which: str, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        other = free_port()
        ports = {"http": port, "tcp": other} if which == "http" else {"http": other, "tcp": port}
        argv = ["serve", "all", "--http", f"127.0.0.1:{ports['http']}", "--tcp", f"127.0.0.1:{ports['tcp']}"]
        assert main(argv) == EXIT_FAILURE
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if " WARNING " not in line]
    assert lines == [f"imsdk: cannot listen on 127.0.0.1:{port}: address already in use"]


@pytest.mark.parametrize(
    ("argv", "file", "expected"),
    [
        ([], "", ""),
        (["--media", "http://10.0.0.12:8300/"], "", "http://10.0.0.12:8300/"),
        (["--config", "{f}"], 'media_url = "http://m:1"', "http://m:1"),
        (["--config", "{f}", "--media", "https://cli"], 'media_url = "http://m:1"', "https://cli"),
    ],
)
def test_media_option_reaches_the_configuration(
    argv: list[str], file: str, expected: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "f.toml", f"[server]\n{file}\n")
    args = _build_parser().parse_args(["serve", "router", *(a.format(f=path) for a in argv)])
    config = load_serve_config(args.config, _serve_overrides(args))
    assert config.media_url == expected


def test_help_is_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert main(["serve", "--help"]) == 0
    out, err = capsys.readouterr()
    for option in (
        "--config",
        "--http",
        "--tcp",
        "--data",
        "--queue",
        "--registry",
        "--cache",
        "--database",
        "--media",
    ):
        assert option in out
    assert err == ""
