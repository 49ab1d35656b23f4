"""The one conformance suite every :class:`~imsdk_server.auth.UserStore` implementation must pass.

Each check is a plain async function taking a fresh, empty, opened store. Test modules run every function in
:data:`CHECKS` against SQLite and MySQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from imsdk_server.auth._errors import TooManyFriends, UserExists, UserNotFound
from imsdk_server.auth._store import UserStore

__all__ = ["CHECKS"]

T0 = 1_800_000_000.5


async def check_create_and_get(store: UserStore) -> None:
    """A created user reads back whole; its profile starts with the nickname and empty fields."""
    assert await store.get_user("alice") is None
    user = await store.create_user("alice", "scrypt$1$2$3$salt$hash", "Alice", now=T0)
    assert (user.uid, user.password_hash, user.created_at) == ("alice", "scrypt$1$2$3$salt$hash", T0)
    assert await store.get_user("alice") == user
    profile = await store.get_profile("alice")
    assert profile is not None
    assert (profile.uid, profile.nickname, profile.signature, profile.avatar, profile.updated_at) == (
        "alice",
        "Alice",
        "",
        "",
        T0,
    )


async def check_duplicate_uid(store: UserStore) -> None:
    """A taken uid raises ``UserExists`` and leaves the first user untouched."""
    await store.create_user("bob", "h1", "Bob", now=T0)
    try:
        await store.create_user("bob", "h2", "Other", now=T0 + 1)
    except UserExists:
        pass
    else:
        raise AssertionError("duplicate uid accepted")
    user = await store.get_user("bob")
    assert user is not None
    assert user.password_hash == "h1"
    profile = await store.get_profile("bob")
    assert profile is not None
    assert profile.nickname == "Bob"


async def check_uids_are_case_sensitive(store: UserStore) -> None:
    """``Alice`` and ``alice`` are two users (MySQL must use a binary collation)."""
    await store.create_user("alice", "h1", "lower", now=T0)
    await store.create_user("Alice", "h2", "upper", now=T0)
    a, b = await store.get_user("alice"), await store.get_user("Alice")
    assert a is not None
    assert b is not None
    assert (a.password_hash, b.password_hash) == ("h1", "h2")


async def check_values_are_bound_not_interpolated(store: UserStore) -> None:
    """SQL fragments and odd text are stored and read back verbatim."""
    nasty = "x'); DROP TABLE auth_users; --"
    await store.create_user("carol", "h", nasty, now=T0)
    await store.update_profile("carol", signature='" OR 1=1 -- ☃ 😀', avatar="media:1?a=%s&b=?", now=T0 + 1)
    profile = await store.get_profile("carol")
    assert profile is not None
    assert (profile.nickname, profile.signature, profile.avatar) == (
        nasty,
        '" OR 1=1 -- ☃ 😀',
        "media:1?a=%s&b=?",
    )
    assert await store.get_user("' OR '1'='1") is None
    assert await store.get_user("carol") is not None


async def check_set_password_hash(store: UserStore) -> None:
    """The hash can be replaced (re-hash with stronger parameters)."""
    await store.create_user("dave", "old", "Dave", now=T0)
    await store.set_password_hash("dave", "new")
    user = await store.get_user("dave")
    assert user is not None
    assert user.password_hash == "new"


async def check_friends_are_mutual(store: UserStore) -> None:
    """Adding makes both users friends; adding again says so; removing ends it both ways."""
    for uid in ("a", "b", "c"):
        await store.create_user(uid, "h", uid.upper(), now=T0)
    assert await store.add_friend("a", "b", now=T0, limit=10) is True
    assert await store.add_friend("a", "b", now=T0, limit=10) is False
    assert await store.add_friend("b", "a", now=T0, limit=10) is False
    assert await store.add_friend("c", "a", now=T0, limit=10) is True
    assert await store.list_friends("a") == ["b", "c"]
    assert await store.list_friends("b") == ["a"]
    assert await store.remove_friend("b", "a") is True
    assert await store.remove_friend("a", "b") is False
    assert await store.list_friends("a") == ["c"]
    assert await store.list_friends("b") == []


async def check_friend_must_exist(store: UserStore) -> None:
    """Befriending an unknown user raises ``UserNotFound`` and stores nothing."""
    await store.create_user("a", "h", "A", now=T0)
    for other in ("ghost", "A"):
        try:
            await store.add_friend("a", other, now=T0, limit=10)
        except UserNotFound:
            pass
        else:
            raise AssertionError("friend with unknown user accepted")
    assert await store.list_friends("a") == []
    assert await store.list_friends("ghost") == []


async def check_friend_limit(store: UserStore) -> None:
    """A full list refuses one more friend, on either side."""
    for uid in ("a", "b", "c", "d"):
        await store.create_user(uid, "h", uid, now=T0)
    assert await store.add_friend("a", "b", now=T0, limit=2)
    assert await store.add_friend("a", "c", now=T0, limit=2)
    for pair in (("a", "d"), ("d", "a")):
        try:
            await store.add_friend(*pair, now=T0, limit=2)
        except TooManyFriends:
            pass
        else:
            raise AssertionError("friend limit not enforced")
    assert await store.list_friends("a") == ["b", "c"]
    assert await store.list_friends("d") == []


async def check_update_profile(store: UserStore) -> None:
    """Only the given fields change; ``updated_at`` always moves; unknown users raise ``UserNotFound``."""
    await store.create_user("erin", "h", "Erin", now=T0)
    p1 = await store.update_profile("erin", signature="hello", now=T0 + 5)
    assert (p1.nickname, p1.signature, p1.avatar, p1.updated_at) == ("Erin", "hello", "", T0 + 5)
    p2 = await store.update_profile("erin", nickname="E", avatar="media:42", now=T0 + 6)
    assert (p2.nickname, p2.signature, p2.avatar, p2.updated_at) == ("E", "hello", "media:42", T0 + 6)
    p3 = await store.update_profile("erin", now=T0 + 7)
    assert (p3.nickname, p3.signature, p3.updated_at) == ("E", "hello", T0 + 7)
    assert await store.get_profile("erin") == p3
    try:
        await store.update_profile("nobody", nickname="x", now=T0)
    except UserNotFound:
        pass
    else:
        raise AssertionError("profile of an unknown user updated")
    assert await store.get_profile("nobody") is None


async def check_long_values(store: UserStore) -> None:
    """Values at the documented maximum lengths fit."""
    uid = "u" * 64
    await store.create_user(uid, "s" * 255, "n" * 64, now=T0)
    await store.update_profile(uid, signature="é" * 256, avatar="a" * 512, now=T0)
    profile = await store.get_profile(uid)
    assert profile is not None
    assert (profile.signature, profile.avatar) == ("é" * 256, "a" * 512)


CHECKS: tuple[Callable[[UserStore], Awaitable[None]], ...] = (
    check_create_and_get,
    check_duplicate_uid,
    check_uids_are_case_sensitive,
    check_values_are_bound_not_interpolated,
    check_set_password_hash,
    check_friends_are_mutual,
    check_friend_must_exist,
    check_friend_limit,
    check_update_profile,
    check_long_values,
)
"""Every check, in a stable order."""
