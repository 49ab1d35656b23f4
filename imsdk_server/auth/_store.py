"""The user directory: users and password hashes, friends, profiles. One SQL implementation serves SQLite and
MySQL through :mod:`imsdk_server.backends.sql`; every value is bound, never interpolated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from imsdk_server.auth._errors import TooManyFriends, UserExists, UserNotFound
from imsdk_server.auth._events import Profile
from imsdk_server.backends.sql import (
    Dialect,
    IntegrityViolation,
    SQLCursor,
    SQLDatabase,
    open_database,
    setup_schema,
)

__all__ = ["SCHEMA_VERSION", "SQLUserStore", "SchemaTooNew", "User", "UserStore"]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class User:
    """A registered user as stored (the password hash never leaves the server)."""

    uid: str
    password_hash: str
    created_at: float


class SchemaTooNew(RuntimeError):
    """The database was written by a newer version of this code; refusing to touch it."""


@runtime_checkable
class UserStore(Protocol):
    """What the auth service needs from storage. Raises ``StorageUnavailable`` when the store fails."""

    async def create_user(self, uid: str, password_hash: str, nickname: str, *, now: float) -> User:
        """Create a user and their profile; raises :class:`~imsdk_server.auth.UserExists` if taken."""
        ...

    async def get_user(self, uid: str) -> User | None:
        """The user, or ``None``."""
        ...

    async def set_password_hash(self, uid: str, password_hash: str) -> None:
        """Replace a user's password hash (after a re-hash with stronger parameters)."""
        ...

    async def add_friend(self, uid: str, friend: str, *, now: float, limit: int) -> bool:
        """Make ``uid`` and ``friend`` mutual friends; ``False`` if they already were.

        Raises :class:`~imsdk_server.auth.UserNotFound` if either does not exist and
        :class:`~imsdk_server.auth.TooManyFriends` if either list already holds ``limit`` friends.
        """
        ...

    async def remove_friend(self, uid: str, friend: str) -> bool:
        """End the friendship both ways; ``False`` if there was none."""
        ...

    async def list_friends(self, uid: str) -> list[str]:
        """``uid``'s friends, sorted."""
        ...

    async def get_profile(self, uid: str) -> Profile | None:
        """The profile, or ``None`` if the user does not exist."""
        ...

    async def update_profile(
        self,
        uid: str,
        *,
        nickname: str | None = None,
        signature: str | None = None,
        avatar: str | None = None,
        now: float,
    ) -> Profile:
        """Change the given fields; returns the new profile. Raises ``UserNotFound``."""
        ...

    async def aclose(self) -> None:
        """Release the database."""
        ...


def _ddl(dialect: Dialect) -> list[str]:
    tail = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin" if dialect is Dialect.MYSQL else ""
    real = "DOUBLE" if dialect is Dialect.MYSQL else "REAL"
    return [
        f"CREATE TABLE IF NOT EXISTS auth_schema (id INTEGER PRIMARY KEY, version INTEGER NOT NULL){tail}",
        "CREATE TABLE IF NOT EXISTS auth_users (uid VARCHAR(64) NOT NULL PRIMARY KEY, "
        f"password_hash VARCHAR(255) NOT NULL, created_at {real} NOT NULL){tail}",
        "CREATE TABLE IF NOT EXISTS auth_profiles (uid VARCHAR(64) NOT NULL PRIMARY KEY, "
        "nickname VARCHAR(64) NOT NULL, signature VARCHAR(256) NOT NULL, avatar VARCHAR(512) NOT NULL, "
        f"updated_at {real} NOT NULL){tail}",
        "CREATE TABLE IF NOT EXISTS auth_friends (uid VARCHAR(64) NOT NULL, friend_uid VARCHAR(64) NOT NULL, "
        f"created_at {real} NOT NULL, PRIMARY KEY (uid, friend_uid)){tail}",
    ]


class SQLUserStore:
    """:class:`UserStore` on a :class:`~imsdk_server.backends.sql.SQLDatabase` (SQLite or MySQL).

    Build it with :meth:`open`, which creates the tables and checks the schema version.
    """

    def __init__(self, db: SQLDatabase) -> None:
        self.db = db

    @classmethod
    async def open(cls, db: SQLDatabase | str) -> SQLUserStore:
        """Create the tables if needed, record or check the schema version, and return the store."""
        if isinstance(db, str):
            db = open_database(db)
        await setup_schema(
            db, _ddl(db.dialect), version_table="auth_schema", version=SCHEMA_VERSION, too_new=SchemaTooNew
        )
        return cls(db)

    async def create_user(self, uid: str, password_hash: str, nickname: str, *, now: float) -> User:
        def create(cur: SQLCursor) -> None:
            cur.execute(
                "INSERT INTO auth_users (uid, password_hash, created_at) VALUES (?, ?, ?)",
                (uid, password_hash, now),
            )
            cur.execute(
                "INSERT INTO auth_profiles (uid, nickname, signature, avatar, updated_at) "
                "VALUES (?, ?, '', '', ?)",
                (uid, nickname, now),
            )

        try:
            await self.db.transaction(create)
        except IntegrityViolation:
            raise UserExists("uid is taken") from None
        return User(uid, password_hash, now)

    async def get_user(self, uid: str) -> User | None:
        row = await self.db.fetchone(
            "SELECT uid, password_hash, created_at FROM auth_users WHERE uid = ?", (uid,)
        )
        return None if row is None else User(str(row[0]), str(row[1]), float(row[2]))

    async def set_password_hash(self, uid: str, password_hash: str) -> None:
        await self.db.execute("UPDATE auth_users SET password_hash = ? WHERE uid = ?", (password_hash, uid))

    async def add_friend(self, uid: str, friend: str, *, now: float, limit: int) -> bool:
        def add(cur: SQLCursor) -> bool:
            found = cur.fetchall("SELECT uid FROM auth_users WHERE uid IN (?, ?)", (uid, friend))
            if len({r[0] for r in found}) != len({uid, friend}):
                raise UserNotFound("no such user")
            if cur.fetchone("SELECT 1 FROM auth_friends WHERE uid = ? AND friend_uid = ?", (uid, friend)):
                return False
            for who in (uid, friend):
                row = cur.fetchone("SELECT COUNT(*) FROM auth_friends WHERE uid = ?", (who,))
                if row is not None and int(row[0]) >= limit:
                    raise TooManyFriends("the friend list is full")
            cur.execute(
                "INSERT INTO auth_friends (uid, friend_uid, created_at) VALUES (?, ?, ?)", (uid, friend, now)
            )
            cur.execute(
                "INSERT INTO auth_friends (uid, friend_uid, created_at) VALUES (?, ?, ?)", (friend, uid, now)
            )
            return True

        try:
            return await self.db.transaction(add)
        except IntegrityViolation:
            return False  # a concurrent add won the race

    async def remove_friend(self, uid: str, friend: str) -> bool:
        def remove(cur: SQLCursor) -> bool:
            n = cur.execute(
                "DELETE FROM auth_friends WHERE (uid = ? AND friend_uid = ?) OR (uid = ? AND friend_uid = ?)",
                (uid, friend, friend, uid),
            )
            return n > 0

        return await self.db.transaction(remove)

    async def list_friends(self, uid: str) -> list[str]:
        rows = await self.db.fetchall(
            "SELECT friend_uid FROM auth_friends WHERE uid = ? ORDER BY friend_uid", (uid,)
        )
        return [str(r[0]) for r in rows]

    async def get_profile(self, uid: str) -> Profile | None:
        row = await self.db.fetchone(
            "SELECT uid, nickname, signature, avatar, updated_at FROM auth_profiles WHERE uid = ?", (uid,)
        )
        return (
            None
            if row is None
            else Profile(str(row[0]), str(row[1]), str(row[2]), str(row[3]), float(row[4]))
        )

    async def update_profile(
        self,
        uid: str,
        *,
        nickname: str | None = None,
        signature: str | None = None,
        avatar: str | None = None,
        now: float,
    ) -> Profile:
        changes = [
            (col, v) for col, v in (("nickname", nickname), ("signature", signature), ("avatar", avatar))
        ]
        sets = [(col, v) for col, v in changes if v is not None]

        def update(cur: SQLCursor) -> tuple[object, ...] | None:
            # Column names come from the fixed list above, never from input; values are bound.
            assignments = (
                ", ".join(f"{col} = ?" for col, _ in sets) + (", " if sets else "") + "updated_at = ?"
            )
            cur.execute(
                f"UPDATE auth_profiles SET {assignments} WHERE uid = ?",
                (*[v for _, v in sets], now, uid),
            )
            return cur.fetchone(
                "SELECT uid, nickname, signature, avatar, updated_at FROM auth_profiles WHERE uid = ?", (uid,)
            )

        row = await self.db.transaction(update)
        if row is None:
            raise UserNotFound("no such user")
        return Profile(str(row[0]), str(row[1]), str(row[2]), str(row[3]), float(str(row[4])))

    async def aclose(self) -> None:
        await self.db.aclose()
