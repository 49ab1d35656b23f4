"""v2 tokens (pure): the documented layout, every fault refused with its reason, key rotation, revocation."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given
from hypothesis import strategies as st

from imsdk_server.auth import (
    Claims,
    KeyRing,
    RevocationSet,
    TokenCodec,
    TokenFault,
    TokenInvalid,
    TokenKey,
    TokenVerifier,
)
from imsdk_server.auth._tokens import decode_claims, encode_claims

T0 = 1_800_000_000
LIFE = 3600
LEEWAY = 30
KEY = bytes(range(32))


def ring_with(*kids: str) -> KeyRing:
    return KeyRing(TokenKey(kid, hashlib.sha256(kid.encode()).digest(), T0 + i) for i, kid in enumerate(kids))


@pytest.fixture
def ring() -> KeyRing:
    return ring_with("k1")


def issue(ring: KeyRing, uid: str = "alice", device: str = "phone-1", now: float = T0) -> tuple[str, Claims]:
    return TokenCodec(ring).issue(uid, device, now=now, lifetime=LIFE)


def refused(verifier: TokenVerifier, token: str, now: float = T0, **kw: str) -> TokenFault:
    with pytest.raises(TokenInvalid) as info:
        verifier.verify(token, now, **kw)
    assert info.value.message == "invalid token"  # the text never says which part failed
    assert info.value.code.name == "TOKEN_INVALID"
    return info.value.fault


def test_round_trip(ring: KeyRing) -> None:
    token, claims = issue(ring)
    assert token.startswith("v2.k1.")
    got = TokenVerifier(ring).verify(token, T0 + 10, uid="alice", device="phone-1")
    assert got == claims
    assert (got.expires_at - got.issued_at, len(got.token_id)) == (LIFE, 16)


def test_matches_documented_layout() -> None:
    """Build a token by hand from the spec in docs/auth.md and compare with the codec's output."""
    ring = KeyRing([TokenKey("kid_A", KEY, T0)])
    nonce = bytes(range(100, 124))
    tid = bytes(range(16))
    claims = Claims("bob", "tablet", T0, T0 + LIFE, tid)
    plain = b"\x01" + struct.pack(">QQ", T0, T0 + LIFE) + tid + b"\x03bob" + b"\x06tablet"
    subkey = hashlib.blake2b(nonce[:12], key=KEY, digest_size=32, person=b"imsdk-token-v2").digest()
    sealed = ChaCha20Poly1305(subkey).encrypt(nonce[12:], plain, b"v2.kid_A.")
    expected = "v2.kid_A." + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
    assert encode_claims(claims) == plain
    assert TokenCodec(ring).encode(claims, nonce=nonce) == expected
    assert TokenVerifier(ring).verify(expected, T0) == claims


def test_every_single_character_change_is_refused(ring: KeyRing) -> None:
    token, _ = issue(ring)
    verifier = TokenVerifier(ring)
    for pos in range(len(token)):
        for mask in (0x01, 0x02, 0x04, 0x10, 0x20, 0x40, 0x80):
            flipped = token[:pos] + chr(ord(token[pos]) ^ mask) + token[pos + 1 :]
            with pytest.raises(TokenInvalid):
                verifier.verify(flipped, T0)


def test_every_bit_of_the_sealed_bytes_is_authenticated(ring: KeyRing) -> None:
    token, _ = issue(ring)
    head, payload = token.rsplit(".", 1)
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    verifier = TokenVerifier(ring)
    for pos in range(len(raw)):
        for bit in range(8):
            mutated = bytearray(raw)
            mutated[pos] ^= 1 << bit
            forged = head + "." + base64.urlsafe_b64encode(bytes(mutated)).rstrip(b"=").decode()
            assert refused(verifier, forged) is TokenFault.BAD_TAG


def test_truncated_and_extended_tokens_are_refused(ring: KeyRing) -> None:
    token, _ = issue(ring)
    verifier = TokenVerifier(ring)
    for end in range(len(token)):
        with pytest.raises(TokenInvalid):
            verifier.verify(token[:end], T0)
    for extra in ("A", "AA", "AAAA", "=", "==", ".", " ", "\n"):
        with pytest.raises(TokenInvalid):
            verifier.verify(token + extra, T0)


def test_non_canonical_base64_is_refused(ring: KeyRing) -> None:
    token, _ = issue(ring, uid="alice1")  # 88 sealed bytes: the last character has four unused bits
    head, payload = token.rsplit(".", 1)
    assert len(payload) % 4 != 0
    # The last character carries unused low bits: setting one decodes to the same bytes but must be refused.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(payload[-1])
    twin = head + "." + payload[:-1] + alphabet[last | 1 if last % 2 == 0 else last & ~1]
    assert refused(TokenVerifier(ring), twin) is TokenFault.MALFORMED


@pytest.mark.parametrize(
    ("now", "fault"),
    [
        (T0 + LIFE + LEEWAY - 1, None),
        (T0 + LIFE + LEEWAY, TokenFault.EXPIRED),
        (T0 + LIFE + LEEWAY + 1, TokenFault.EXPIRED),  # expired by one second past the leeway
        (T0 + LIFE + 1, None),  # one second past expiry, within leeway
        (T0 - LEEWAY, None),
        (T0 - LEEWAY - 1, TokenFault.NOT_YET_VALID),  # issued in the future beyond the leeway
        (T0 - 10 * LEEWAY, TokenFault.NOT_YET_VALID),
    ],
)
def test_time_window(ring: KeyRing, now: int, fault: TokenFault | None) -> None:
    token, claims = issue(ring)
    verifier = TokenVerifier(ring, leeway=LEEWAY)
    if fault is None:
        assert verifier.verify(token, now) == claims
    else:
        assert refused(verifier, token, now) is fault


def test_zero_leeway_expires_on_the_second() -> None:
    ring = ring_with("k1")
    token, _ = issue(ring)
    verifier = TokenVerifier(ring, leeway=0)
    verifier.verify(token, T0 + LIFE - 1)
    assert refused(verifier, token, T0 + LIFE) is TokenFault.EXPIRED


def test_rotation_retirement_and_unknown_kid() -> None:
    old_ring = ring_with("k1")
    old_token, _ = issue(old_ring)
    ring = old_ring.rotate(T0 + 100, kid="k2")
    assert ring.signing_key.kid == "k2"
    new_token, _ = issue(ring)
    assert new_token.startswith("v2.k2.")
    both = TokenVerifier(ring)
    both.verify(old_token, T0)  # older keys verify until retired
    both.verify(new_token, T0)
    retired = TokenVerifier(ring.retire("k1"))
    assert refused(retired, old_token) is TokenFault.RETIRED_KEY
    retired.verify(new_token, T0)
    dropped = TokenVerifier(ring.without("k1"))
    assert refused(dropped, old_token) is TokenFault.UNKNOWN_KEY
    # A verifier that has not received the new key yet fails closed.
    assert refused(TokenVerifier(old_ring), new_token) is TokenFault.UNKNOWN_KEY


def test_token_cannot_be_moved_to_another_key() -> None:
    ring = ring_with("k1", "k2")
    token, _ = issue(ring)  # signed by k2, the newest
    moved = token.replace("v2.k2.", "v2.k1.", 1)
    assert refused(TokenVerifier(ring), moved) is TokenFault.BAD_TAG


def test_use_ring_switches_keys(ring: KeyRing) -> None:
    verifier = TokenVerifier(ring)
    codec = TokenCodec(ring)
    rotated = ring.rotate(T0, kid="k9")
    codec.use_ring(rotated)
    token, _ = codec.issue("alice", "d", now=T0, lifetime=LIFE)
    assert refused(verifier, token) is TokenFault.UNKNOWN_KEY
    verifier.use_ring(rotated)
    verifier.verify(token, T0)


def test_revoked_token_is_refused(ring: KeyRing) -> None:
    token, claims = issue(ring)
    other, _ = issue(ring)
    revoked = RevocationSet()
    verifier = TokenVerifier(ring, revoked=revoked)
    verifier.verify(token, T0)
    revoked.add(claims.token_id, claims.expires_at + LEEWAY)
    assert refused(verifier, token) is TokenFault.REVOKED
    verifier.verify(other, T0)
    revoked.prune(claims.expires_at + LEEWAY + 1)
    assert len(revoked) == 0


def test_other_uid_or_device_is_refused(ring: KeyRing) -> None:
    token, _ = issue(ring, uid="alice", device="phone-1")
    verifier = TokenVerifier(ring)
    assert refused(verifier, token, uid="mallory") is TokenFault.WRONG_SUBJECT
    assert refused(verifier, token, device="phone-2") is TokenFault.WRONG_SUBJECT
    assert refused(verifier, token, uid="alice", device="phone-2") is TokenFault.WRONG_SUBJECT
    assert refused(verifier, token, uid="Alice") is TokenFault.WRONG_SUBJECT


@pytest.mark.parametrize(
    "junk",
    ["", "v2", "v2.", "v2..", "v2.k1.", "v2.k1", "v1.k1.AAAA", "V2.k1.AAAA", "v3.k1.AAAA", "v2.k1.!!!!",
     "v2.k1.ü", "v2.k1." + "A" * 600, "v2.k1.AAAA.AAAA", "v2.k1.\x00", "v2.ghost.AAAA"],
)  # fmt: skip
def test_garbage_is_refused(ring: KeyRing, junk: str) -> None:
    with pytest.raises(TokenInvalid):
        TokenVerifier(ring).verify(junk, T0)


def test_non_string_is_refused(ring: KeyRing) -> None:
    for junk in (None, b"v2.k1.AAAA", 42, ["v2"]):
        with pytest.raises(TokenInvalid):
            TokenVerifier(ring).verify(junk, T0)  # type: ignore[arg-type]


ids = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", min_size=1, max_size=64
)


@given(
    uid=ids,
    device=ids,
    iat=st.integers(0, 2**40),
    life=st.integers(1, 2**30),
    tid=st.binary(min_size=16, max_size=16),
)
def test_claims_round_trip(uid: str, device: str, iat: int, life: int, tid: bytes) -> None:
    claims = Claims(uid, device, iat, iat + life, tid)
    data = encode_claims(claims)
    assert decode_claims(data) == claims
    for bad in (data[:-1], data + b"\x00", b"\x02" + data[1:]):
        with pytest.raises(ValueError):  # noqa: PT011 - three different malformations
            decode_claims(bad)


@given(data=st.binary(max_size=200))
def test_decode_claims_never_crashes(data: bytes) -> None:
    try:
        decode_claims(data)
    except (ValueError, UnicodeDecodeError):
        pass


def test_key_ring_file(tmp_path: Path) -> None:
    ring = KeyRing.generate(T0).rotate(T0 + 1, kid="second").retire("second")
    path = tmp_path / "keys.json"
    ring.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = KeyRing.load(path)
    assert loaded.keys == ring.keys
    assert loaded.signing_key == ring.signing_key
    for bad in ("{}", "[]", "not json", '{"keys": [{"kid": "k", "secret": "short", "created": 1}]}'):
        with pytest.raises(ValueError):  # noqa: PT011 - several distinct malformations
            KeyRing.from_json(bad)


def test_key_ring_rules() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        KeyRing([TokenKey("a", KEY, 1), TokenKey("a", KEY, 2)])
    with pytest.raises(ValueError, match="kid"):
        TokenKey("bad kid", KEY, 1)
    with pytest.raises(ValueError, match="32 bytes"):
        TokenKey("a", os.urandom(16), 1)
    with pytest.raises(LookupError):
        _ = KeyRing([TokenKey("a", KEY, 1, retired=True)]).signing_key
    assert repr(KEY) not in repr(TokenKey("a", KEY, 1))  # secrets stay out of logs


def test_revocation_set_replace_keeps_local_additions() -> None:
    s = RevocationSet()
    s.add(b"local", 100.0)
    s.replace({b"shared": 200.0})
    assert b"local" in s
    assert b"shared" in s
    s.prune(150.0)
    assert b"local" not in s
    assert b"shared" in s
