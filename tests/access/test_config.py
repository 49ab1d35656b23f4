"""AccessConfig: defaults, checks, and loading from TOML with command-line overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from imsdk_server.access import AccessConfig
from imsdk_server.config import ConfigError


def test_defaults_follow_the_talk() -> None:
    cfg = AccessConfig(server_id=1)
    assert cfg.idle_timeout == 300.0
    assert cfg.handshake_timeout == 10.0
    assert cfg.heartbeat_timeout is None
    assert not cfg.tls


@pytest.mark.parametrize(
    "bad",
    [
        {"idle_timeout": 0},
        {"heartbeat_timeout": -1.0},
        {"max_frame_size": 10},
        {"send_queue_max_bytes": 1024, "max_frame_size": 4096},
        {"certfile": "cert.pem"},
    ],
)
def test_inconsistent_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        AccessConfig(server_id=1, **bad)  # type: ignore[arg-type]


def test_toml_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "imsdk.toml"
    path.write_text('[access]\nserver_id = 5\nidle_timeout = 120\nregion = "eu"\n')
    cfg = AccessConfig.from_toml(path, port=9000, host=None)
    assert (cfg.server_id, cfg.idle_timeout, cfg.region, cfg.port, cfg.host) == (
        5,
        120.0,
        "eu",
        9000,
        "127.0.0.1",
    )
    path.write_text("[access]\nserver_id = 5\nidle_timeot = 120\n")
    with pytest.raises(ConfigError):
        AccessConfig.from_toml(path)


def test_backend_send_timeout_is_bounded_and_positive() -> None:
    assert AccessConfig(server_id=1).backend_send_timeout == 5.0
    with pytest.raises(ValueError, match="backend_send_timeout"):
        AccessConfig(server_id=1, backend_send_timeout=0)


def test_the_message_server_hint_names_the_chat_business_by_default() -> None:
    from imsdk_proto.codes import Biz

    assert AccessConfig(server_id=1).msg_server_biz == Biz.CHAT
    assert AccessConfig(server_id=1, msg_server_biz=0).msg_server_biz == 0  # no hint
