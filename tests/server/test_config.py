from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from imsdk_server.config import ConfigError, HostPort, load_config, parse_host_port


class Kind(enum.Enum):
    EMBEDDED = "embedded"
    REDIS = "redis"


@dataclass
class Sample:
    tcp: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 9000))
    """Where clients connect."""
    idle_timeout: float = 300.0
    """Seconds before an idle line closes."""
    max_connections: int = 10_000
    tls: bool = False
    data: Path | None = None
    kind: Kind = Kind.EMBEDDED
    regions: tuple[str, ...] = ()
    token_kind: Literal["v1", "v2"] = "v2"


def test_defaults_without_file_or_overrides() -> None:
    assert load_config(Sample) == Sample()


def test_file_table_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "imsdk.toml"
    cfg.write_text(
        '[access]\ntcp = "0.0.0.0:7000"\nidle_timeout = 60\ntls = true\n'
        'kind = "redis"\nregions = ["eu", "us"]\n'
    )
    got = load_config(Sample, path=cfg, section="access", overrides={"idle_timeout": "30", "data": None})
    assert got == Sample(HostPort("0.0.0.0", 7000), 30.0, 10_000, True, None, Kind.REDIS, ("eu", "us"))
    assert load_config(Sample, overrides={"token_kind": "v1"}).token_kind == "v1"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"idel_timeout": 1}, "unknown configuration option"),
        ({"max_connections": "many"}, "max_connections: expected int"),
        ({"max_connections": True}, "expected a number"),
        ({"tls": "maybe"}, "expected true/false"),
        ({"tcp": "nohost"}, "tcp: expected HOST:PORT"),
        ({"tcp": "h:99999"}, "port out of range"),
        ({"kind": "kafka"}, "expected one of embedded, redis"),
        ({"token_kind": "v3"}, "token_kind: expected one of 'v1', 'v2'"),
    ],
)
def test_bad_values_are_config_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(Sample, overrides=overrides)


def test_unreadable_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(Sample, path=tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[access\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_config(Sample, path=bad, section="access")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:80", HostPort("127.0.0.1", 80)),
        ("[::1]:0", HostPort("::1", 0)),
        ("db:3306", HostPort("db", 3306)),
    ],
)
def test_parse_host_port(text: str, expected: HostPort) -> None:
    assert parse_host_port(text) == expected
    assert parse_host_port(str(expected)) == expected
