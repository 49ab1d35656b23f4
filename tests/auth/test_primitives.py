"""Passwords, login throttling and v1 opaque tokens (on the in-process cache with a fake clock)."""

from __future__ import annotations

import pytest

from imsdk_server.auth import (
    LoginThrottle,
    OpaqueTokenStore,
    PasswordHasher,
    ScryptParams,
    ThrottleRule,
    TokenFault,
    TokenInvalid,
)
from imsdk_server.backends.cache import MemoryCache

FAST = ScryptParams(log2_n=10, r=8, p=1)


# -- passwords ---------------------------------------------------------------------------------------------


def test_hash_format_and_verify() -> None:
    hasher = PasswordHasher(FAST)
    encoded = hasher.hash("correct horse")
    parts = encoded.split("$")
    assert parts[:4] == ["scrypt", "10", "8", "1"]
    assert hasher.verify("correct horse", encoded)
    assert not hasher.verify("correct horsf", encoded)
    assert not hasher.verify("", encoded)
    assert hasher.hash("correct horse") != encoded  # fresh salt every time


def test_parameters_travel_with_the_hash() -> None:
    old = PasswordHasher(ScryptParams(log2_n=9, r=4, p=1)).hash("pw-123456")
    new_hasher = PasswordHasher(FAST)
    assert new_hasher.verify("pw-123456", old)
    assert new_hasher.needs_rehash(old)
    assert not new_hasher.needs_rehash(new_hasher.hash("pw-123456"))


@pytest.mark.parametrize(
    "stored",
    ["", "plain", "scrypt$10$8$1$salt", "scrypt$99$8$1$AAAAAAAAAAA$AAAA", "bcrypt$10$8$1$a$b",
     "scrypt$x$8$1$AAAAAAAAAAA$AAAA", "scrypt$10$8$1$!!!!$????", "scrypt$10$8$1$AAAAAAAAAAAA$AAAA"],
)  # fmt: skip
def test_malformed_stored_hash_never_matches(stored: str) -> None:
    hasher = PasswordHasher(FAST)
    assert hasher.verify("anything-long", stored) is False
    assert hasher.needs_rehash(stored)


def test_dummy_never_matches_and_unicode_passwords_work() -> None:
    hasher = PasswordHasher(FAST)
    assert hasher.verify_dummy("whatever-password") is False
    encoded = hasher.hash("пароль☃\ud800x")
    assert hasher.verify("пароль☃\ud800x", encoded)


def test_params_are_bounded() -> None:
    with pytest.raises(ValueError, match="out of range"):
        ScryptParams(log2_n=40)


# -- throttle ----------------------------------------------------------------------------------------------

RULE = ThrottleRule(limit=3, window=60.0)


def test_throttle_window() -> None:
    t = LoginThrottle()
    steps: list[tuple[str, float, int | None]] = [
        ("check", 0.0, None),
        ("fail", 0.0, None),
        ("fail", 10.0, None),
        ("check", 10.0, None),
        ("fail", 20.0, None),
        ("check", 20.0, 40),  # window started at 0, ends at 60
        ("check", 59.5, 1),
        ("check", 60.0, None),  # a new window
        ("fail", 61.0, None),
        ("check", 61.0, None),
    ]
    for action, now, expected in steps:
        if action == "fail":
            t.record_failure("uid:a", RULE, now)
        else:
            assert t.retry_after("uid:a", RULE, now) == expected, (action, now)
    assert t.retry_after("uid:b", RULE, 61.0) is None


def test_throttle_reset_and_bound() -> None:
    t = LoginThrottle(max_keys=2)
    for _ in range(3):
        t.record_failure("a", RULE, 0.0)
    assert t.retry_after("a", RULE, 1.0) == 59
    t.reset("a")
    assert t.retry_after("a", RULE, 1.0) is None
    for key in ("x", "y", "z"):
        t.record_failure(key, RULE, 0.0)
    assert len(t) == 2


def test_throttle_forgive() -> None:
    t = LoginThrottle()
    for _ in range(3):
        t.record_failure("a", RULE, 0.0)
    assert t.retry_after("a", RULE, 1.0) == 59
    t.forgive("a", RULE, 1.0)
    assert t.retry_after("a", RULE, 1.0) is None  # two failures left, under the limit of three
    t.forgive("a", RULE, 1.0)
    t.forgive("a", RULE, 1.0)
    assert len(t) == 0  # an emptied window is dropped
    t.forgive("never-failed", RULE, 1.0)  # nothing to take back: no window is made
    assert len(t) == 0
    t.record_failure("b", RULE, 0.0)
    t.forgive("b", RULE, 60.0)  # the window ended: nothing of the new one is taken back
    assert len(t) == 0


# -- v1 opaque tokens --------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.anyio
async def test_opaque_tokens() -> None:
    clock = Clock()
    cache = MemoryCache(clock=clock)
    store = OpaqueTokenStore(cache, leeway=5)
    token, claims = await store.issue("alice", "d1", now=clock.now, lifetime=60)
    assert token.startswith("v1.")
    assert len(token) == 46
    assert await store.verify(token, now=clock.now, uid="alice", device="d1") == claims
    assert len(cache) == 1
    assert token not in repr(await cache.get(next(iter(cache._values))))  # only the hash is a key

    async def fault(tok: str, **kw: str) -> TokenFault:
        with pytest.raises(TokenInvalid) as info:
            await store.verify(tok, now=clock.now, **kw)
        return info.value.fault

    assert await fault(token, uid="bob") is TokenFault.WRONG_SUBJECT
    assert await fault(token, device="d2") is TokenFault.WRONG_SUBJECT
    for pos in range(len(token)):
        flipped = token[:pos] + chr(ord(token[pos]) ^ 0x01) + token[pos + 1 :]
        assert await fault(flipped) in (TokenFault.MALFORMED, TokenFault.UNKNOWN_TOKEN)
    for end in range(len(token)):
        assert await fault(token[:end]) is TokenFault.MALFORMED

    clock.now += 60 + 5 - 1
    await store.verify(token, now=clock.now)
    clock.now += 1
    assert await fault(token) in (TokenFault.EXPIRED, TokenFault.UNKNOWN_TOKEN)

    token2, _ = await store.issue("alice", "d1", now=clock.now, lifetime=60)
    assert await store.revoke(token2) is True
    assert await fault(token2) is TokenFault.UNKNOWN_TOKEN
    assert await store.revoke(token2) is False
    assert await store.revoke("junk") is False
