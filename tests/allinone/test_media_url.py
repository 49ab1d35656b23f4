"""A router without the media role checks media references at ``media_url``: the service token it mints from
the key ring (fresh before expiry), two all-in-one processes' worth of roles joined over loopback HTTP (one
with the media role only), the warning of a router that cannot check, and the option's checks."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from imsdk_client import Client, MessageRejected, SendAcked
from imsdk_proto.codes import ErrorCode
from imsdk_proto.messages import ChatImage, MediaRef
from imsdk_server.allinone import ROLES, AllInOne, AllInOneConfig, StartupError, load_serve_config
from imsdk_server.allinone._server import SERVICE_DEVICE, ServiceToken
from imsdk_server.auth import KeyRing, TokenInvalid, TokenVerifier
from imsdk_server.config import ConfigError, HostPort
from imsdk_server.media import HttpMediaCatalog, LocalMediaCatalog
from imsdk_server.metrics import Metrics
from tests.media import _samples as samples

PASSWORD = "correct horse battery"
T0 = 1_700_000_000.0


# -- the service token ---------------------------------------------------------------------------------------


class Clock:
    """Unix time the test sets: the token's clock argument."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# (seconds after the first mint, a new token?) with lifetime 300 and refresh_before 60
SCHEDULE: list[tuple[float, bool]] = [
    (0.0, True),  # the first call mints
    (1.0, False),
    (239.0, False),  # 61 s left
    (239.9, False),  # int(T0) == T0: expires at T0 + 300, renewed from T0 + 240 on
    (240.0, True),  # 60 s left: renewed (issued at T0 + 240, expires T0 + 540)
    (241.0, False),
    (479.99, False),
    (480.0, True),
    (10_000.0, True),  # long idle: the held one expired long ago
    (9_000.0, True),  # the clock went back before the held token's issue time
    (9_001.0, False),
]


def test_the_token_is_minted_once_and_renewed_a_minute_before_it_expires() -> None:
    ring = KeyRing.generate(T0)
    clock = Clock(T0)
    metrics = Metrics()
    token = ServiceToken(lambda: ring, "router-7", clock=clock, metrics=metrics)
    verifier = TokenVerifier(ring, leeway=0)
    held = ""
    for offset, fresh in SCHEDULE:
        clock.now = T0 + offset
        got = token()
        assert (got != held) is fresh, offset
        claims = verifier.verify(got, clock.now, uid="router-7", device=SERVICE_DEVICE)
        assert claims.expires_at - claims.issued_at == 300
        assert claims.expires_at - clock.now > 60 - 1  # always at least a minute of life left (whole seconds)
        assert token.expires_at == claims.expires_at
        held = got
    assert metrics.value("service_tokens_minted_total", uid="router-7") == sum(f for _, f in SCHEDULE)


def test_a_held_token_is_refused_after_its_lifetime() -> None:
    ring = KeyRing.generate(T0)
    token = ServiceToken(lambda: ring, "router-1", clock=Clock(T0), lifetime=120, refresh_before=10)
    with pytest.raises(TokenInvalid):
        TokenVerifier(ring, leeway=0).verify(token(), T0 + 120)


def test_a_rotated_ring_signs_the_next_token() -> None:
    rings = [KeyRing.generate(T0)]
    clock = Clock(T0)
    token = ServiceToken(lambda: rings[-1], "router-2", clock=clock)
    first = token()
    assert first.startswith(f"v2.{rings[0].signing_key.kid}.")
    rings.append(rings[0].rotate(T0 + 1, kid="next"))
    assert token() == first  # still fresh: kept
    clock.now = T0 + 250
    assert token().startswith("v2.next.")


@pytest.mark.parametrize(("lifetime", "refresh_before"), [(60, 60), (60, 61), (60, -1), (0, 0)])
def test_the_renewal_margin_must_fit_in_the_lifetime(lifetime: int, refresh_before: int) -> None:
    ring = KeyRing.generate(T0)
    with pytest.raises(ValueError, match="refresh_before"):
        ServiceToken(lambda: ring, "router-3", lifetime=lifetime, refresh_before=refresh_before)


# -- configuration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://127.0.0.1:8300", "http://127.0.0.1:8300"),
        ("https://media.example/base/", "https://media.example/base/"),
        ("", ""),
    ],
)
def test_media_url_is_read_from_the_server_table(tmp_path: Path, value: str, expected: str) -> None:
    path = tmp_path / "imsdk.toml"
    path.write_text(f'[server]\nmedia_url = "{value}"\n')
    assert load_serve_config(path).media_url == expected
    assert load_serve_config(path, {"media_url": "http://other:1"}).media_url == "http://other:1"


@pytest.mark.parametrize(
    "value",
    [
        "media.local:8300",
        "ftp://h/x",
        "http://",
        "http://h:99999",
        "http://h/?q=1",
        "http://h/#f",
        " http://h",
    ],
)
def test_media_url_must_be_an_http_base_url(value: str) -> None:
    with pytest.raises(
        ConfigError, match=re.escape(f"--media '{value}': expected the media service's base URL")
    ):
        AllInOneConfig(media_url=value)


# -- a router in one process, media in another -------------------------------------------------------------


def loopback(**overrides: object) -> AllInOneConfig:
    return AllInOneConfig(
        http=HostPort("127.0.0.1", 0),
        tcp=HostPort("127.0.0.1", 0),
        **overrides,  # type: ignore[arg-type]
    )


def url_of(server: AllInOne) -> str:
    assert server.http_address is not None
    return f"http://127.0.0.1:{server.http_address[1]}"


@dataclass
class Split:
    media: AllInOne
    rest: AllInOne

    @property
    def media_url(self) -> str:
        return url_of(self.media)

    @property
    def url(self) -> str:
        return url_of(self.rest)


@pytest.fixture
async def split(tmp_path: Path) -> AsyncIterator[Split]:
    """The media role alone, and every other role in a second instance that checks media at the first: two
    processes' worth, sharing nothing but the key ring file (as the cluster's processes do)."""
    keys = tmp_path / "auth-keys.json"
    KeyRing.generate(T0).save(keys)
    async with AllInOne(loopback(data=tmp_path / "media", key_file=keys), roles=["media"]) as media:
        rest_roles = [r for r in ROLES if r != "media"]
        config = loopback(key_file=keys, media_url=url_of(media))
        async with AllInOne(config, roles=rest_roles) as rest:
            async with httpx.AsyncClient(base_url=url_of(rest)) as http:
                for uid in ("alice", "bob"):
                    r = await http.post("/v1/users", json={"uid": uid, "password": PASSWORD, "nickname": uid})
                    assert r.status_code in (200, 201), r.text
            yield Split(media, rest)


@pytest.mark.anyio
async def test_a_router_checks_media_at_the_media_service_with_a_token_it_mints(split: Split) -> None:
    rest = split.rest
    assert isinstance(rest.media_catalog, HttpMediaCatalog)
    assert rest.service_token is not None
    assert rest.router is not None
    assert rest.service_token.uid == f"router-{rest.router.config.server_id}"
    async with (
        Client(split.url, "alice", password=PASSWORD, media_url=split.media_url) as alice,
        Client(split.url, "bob", password=PASSWORD, media_url=split.media_url) as bob,
    ):
        ack = await alice.send_image("bob", samples.png(12, 8), caption="uploaded")
        assert isinstance(ack, SendAcked)
        ghost = MediaRef(sha256=bytes(32), mime="image/png", size=100, width=10, height=10)
        with pytest.raises(MessageRejected) as missing:
            await alice.post("bob", ChatImage(image=ghost)).wait()
        assert missing.value.code is ErrorCode.NOT_FOUND
        info = await alice.upload_media(samples.gif(2, 2), "image")
        edited = MediaRef(sha256=bytes.fromhex(info.id), mime=info.mime, size=info.size, width=3, height=2)
        with pytest.raises(MessageRejected) as mismatch:
            await alice.post("bob", ChatImage(image=edited)).wait()
        assert mismatch.value.code is ErrorCode.MALFORMED_BODY
        last = await bob.send_text("alice", "after the refusals")
        assert last.conv_seq == ack.conv_seq + 1  # nothing refused was stored
    async with httpx.AsyncClient() as http:
        health = (await http.get(f"{split.url}/healthz")).json()
    assert health["router"]["media"] == split.media_url
    # asked over HTTP with the minted token (found, missing, found): one token served every look-up
    media_metrics = split.media.metrics
    assert media_metrics.value("media_meta_total", status=200) == 2
    assert media_metrics.value("media_meta_total", status=404) == 1
    assert media_metrics.value("media_meta_total", status=401) == 0
    assert rest.metrics.value("router_service_tokens_minted_total", uid=rest.service_token.uid) == 1


@pytest.mark.anyio
async def test_a_router_with_the_media_role_reads_the_store_itself(tmp_path: Path) -> None:
    config = loopback(media_url="http://127.0.0.1:9")  # not asked: the store is in the process
    async with AllInOne(config) as server:
        assert isinstance(server.media_catalog, LocalMediaCatalog)
        assert (server.media_checked, server.service_token) == ("local", None)


@pytest.mark.anyio
async def test_a_router_that_cannot_check_media_warns_once_at_start(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="imsdk_server.allinone"):
        async with AllInOne(loopback(), roles=["router"]) as server:
            assert (server.media_catalog, server.media_checked) == (None, "unchecked")
    warnings = [r for r in caplog.records if "media references are not checked" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


@pytest.mark.anyio
async def test_a_router_given_media_url_needs_the_key_ring(tmp_path: Path) -> None:
    config = loopback(media_url="http://127.0.0.1:9", key_file=tmp_path / "missing.json")
    with pytest.raises(StartupError, match="no token key ring"):
        async with AllInOne(config, roles=["router"]):
            pass
