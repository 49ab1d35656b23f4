"""One small connection abstraction over SQLite (embedded) and MySQL/MariaDB (pymysql) for the SQL stores.

Stores write their statements once, with ``?`` placeholders and values always bound (never interpolated);
:class:`SQLDatabase` translates the placeholders for the driver and runs every blocking call on a worker
thread through :func:`anyio.to_thread.run_sync` with a :class:`anyio.CapacityLimiter`, so the event loop never
blocks and at most ``max_connections`` threads touch the database at once.

A *transaction* is a plain synchronous function that receives a :class:`SQLCursor` and runs entirely on one
worker thread with one connection: one thread hop per transaction, commit when it returns, roll back when it
raises.

Driver errors are mapped at this boundary::

    SQLError                    base (a CodedError); .code = ErrorCode.INTERNAL
    ├── StorageUnavailable      the database cannot be reached or failed (STORAGE_UNAVAILABLE)
    └── IntegrityViolation      a unique/primary key or constraint was violated (DUPLICATE)

Programming errors (bad SQL) are bugs and propagate unchanged. :func:`setup_schema` is how every store
creates its tables and records (or checks) its schema version.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import anyio
import anyio.to_thread

from imsdk_proto.codes import ErrorCode
from imsdk_proto.errors import CodedError

__all__ = [
    "Dialect",
    "IntegrityViolation",
    "MySQLDatabase",
    "SQLCursor",
    "SQLDatabase",
    "SQLError",
    "SQLiteDatabase",
    "StorageUnavailable",
    "check_schema_version",
    "open_database",
    "parse_mysql_dsn",
    "setup_schema",
]

T = TypeVar("T")
Row = tuple[Any, ...]
Params = Sequence[Any]


class SQLError(CodedError):
    """Base of the errors this module raises; :attr:`code` is the wire error code it maps to."""


class StorageUnavailable(SQLError):
    """The store cannot be reached or failed while running a statement; callers may retry later."""

    code = ErrorCode.STORAGE_UNAVAILABLE


class IntegrityViolation(SQLError):
    """A statement broke a primary key, unique key or other constraint."""

    code = ErrorCode.DUPLICATE


class Dialect(Enum):
    """Which SQL engine a database speaks; stores branch on it for DDL only."""

    SQLITE = "sqlite"
    MYSQL = "mysql"


_PLACEHOLDER = re.compile(r"\?")


def _to_format_style(sql: str) -> str:
    """``?`` placeholders → pymysql's ``%s`` (with literal ``%`` doubled first)."""
    return _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))


class SQLCursor(Protocol):
    """What a transaction function gets: synchronous statements on one connection, ``?`` placeholders."""

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of affected rows."""
        ...

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """Run a query and return its first row, or ``None``."""
        ...

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query and return all its rows."""
        ...


class SQLDatabase:
    """Async access to one database. Subclasses provide the connection handling of one driver."""

    dialect: Dialect

    def __init__(self, limiter: anyio.CapacityLimiter) -> None:
        self._limiter = limiter
        self._closed = False

    async def transaction(self, fn: Callable[[SQLCursor], T], *, write: bool = False) -> T:
        """Run ``fn`` on a worker thread inside one transaction; commit on return, roll back on raise.

        ``write=True`` says the transaction will write: on SQLite it then takes the write lock when it
        begins (waiting out other writers up to the busy timeout) instead of failing at its first write
        because another connection wrote after its first read. MySQL's row locks need no such hint.
        """
        if self._closed:
            raise StorageUnavailable("database is closed")
        return await anyio.to_thread.run_sync(self._run_transaction, fn, write, limiter=self._limiter)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement in its own transaction; returns the affected row count."""
        return await self.transaction(lambda cur: cur.execute(sql, params))

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """Run a query and return its first row, or ``None``."""
        return await self.transaction(lambda cur: cur.fetchone(sql, params))

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query and return all its rows."""
        return await self.transaction(lambda cur: cur.fetchall(sql, params))

    async def aclose(self) -> None:
        """Close every connection; later calls raise :class:`StorageUnavailable`."""
        if self._closed:
            return
        self._closed = True
        await anyio.to_thread.run_sync(self._close_all, limiter=self._limiter)

    def _run_transaction(self, fn: Callable[[SQLCursor], T], write: bool) -> T:  # pragma: no cover - abstract
        raise NotImplementedError

    def _close_all(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


# -- SQLite --------------------------------------------------------------------------------------------------


class _SQLiteCursor:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> int:
        return self._conn.execute(sql, tuple(params)).rowcount

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = self._conn.execute(sql, tuple(params)).fetchone()
        return row

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return list(self._conn.execute(sql, tuple(params)).fetchall())


class SQLiteDatabase(SQLDatabase):
    """The embedded engine: one SQLite connection (a file, or ``":memory:"``), used by one thread at a time.

    SQLite serialises writers anyway, so one connection behind a limiter of one costs nothing and keeps
    ``:memory:`` databases (which live in their connection) working.

    File databases use WAL journaling, and copy the log back into the database (a checkpoint, run by the
    commit that crosses the mark) every ``wal_autocheckpoint`` pages rather than SQLite's 1,000: a busy
    store rewrites the same index pages commit after commit, and a checkpoint copies each page once however
    often it was logged. With the default of 10,000 (about 40 MB of log), small commits on a busy message
    store cost about a quarter less CPU and far fewer of them wait behind a checkpoint (0.5 % instead of
    4.5 % took over 5 ms, in a stand-alone test). After a checkpoint the log file is cut back to
    ``wal_size_limit`` bytes.
    """

    dialect = Dialect.SQLITE

    def __init__(
        self,
        path: str = ":memory:",
        *,
        busy_timeout: float = 5.0,
        wal_autocheckpoint: int = 10_000,
        wal_size_limit: int = 64 << 20,
    ) -> None:
        super().__init__(anyio.CapacityLimiter(1))
        self.path = path
        self._busy_timeout = busy_timeout
        self._wal_autocheckpoint = wal_autocheckpoint
        self._wal_size_limit = wal_size_limit
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA foreign_keys = ON")
                if self.path != ":memory:":
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute(f"PRAGMA wal_autocheckpoint = {int(self._wal_autocheckpoint)}")
                    conn.execute(f"PRAGMA journal_size_limit = {int(self._wal_size_limit)}")
            except sqlite3.Error as exc:
                raise StorageUnavailable(f"cannot open SQLite database: {exc}") from exc
            self._conn = conn
        return self._conn

    def _run_transaction(self, fn: Callable[[SQLCursor], T], write: bool) -> T:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = fn(_SQLiteCursor(conn))
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            except sqlite3.IntegrityError as exc:
                raise IntegrityViolation(str(exc)) from exc
            except sqlite3.OperationalError as exc:
                if "syntax error" in str(exc) or "no such" in str(exc):
                    raise
                raise StorageUnavailable(f"SQLite failed: {exc}") from exc
            except (sqlite3.DatabaseError, sqlite3.InterfaceError) as exc:
                if isinstance(exc, sqlite3.ProgrammingError):
                    raise
                raise StorageUnavailable(f"SQLite failed: {exc}") from exc

    def _close_all(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# -- MySQL ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MySQLParams:
    host: str
    port: int
    user: str
    password: str
    database: str


def parse_mysql_dsn(dsn: str) -> dict[str, Any]:
    """``mysql://user:password@host:port/database`` → keyword arguments for :class:`MySQLDatabase`."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("mysql", "mysql+pymysql", "mariadb"):
        raise ValueError(f"not a MySQL DSN: scheme {parts.scheme!r}")
    database = parts.path.lstrip("/")
    if not database:
        raise ValueError("the MySQL DSN names no database")
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": unquote(database),
    }


class _MySQLCursor:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> int:
        with self._conn.cursor() as cur:
            return int(cur.execute(_to_format_style(sql), tuple(params)))

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        with self._conn.cursor() as cur:
            cur.execute(_to_format_style(sql), tuple(params))
            row = cur.fetchone()
            return None if row is None else tuple(row)

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        with self._conn.cursor() as cur:
            cur.execute(_to_format_style(sql), tuple(params))
            return [tuple(r) for r in cur.fetchall()]


class MySQLDatabase(SQLDatabase):
    """MySQL/MariaDB through pymysql: a small pool of connections, each used by one worker thread at a time.

    A connection that fails with an operational error is dropped, so the next call dials afresh; that is how
    the store recovers after the server comes back.
    """

    dialect = Dialect.MYSQL

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 3306,
        user: str = "root",
        password: str = "",
        database: str,
        max_connections: int = 4,
        connect_timeout: float = 5.0,
        io_timeout: float = 10.0,
    ) -> None:
        super().__init__(anyio.CapacityLimiter(max_connections))
        self._params = _MySQLParams(host, port, user, password, database)
        self._connect_timeout = connect_timeout
        self._io_timeout = io_timeout
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    @classmethod
    def from_dsn(cls, dsn: str, **kwargs: Any) -> MySQLDatabase:
        """Build from ``mysql://user:password@host:port/database``."""
        return cls(**parse_mysql_dsn(dsn), **kwargs)

    def _connect(self) -> Any:
        import pymysql

        p = self._params
        return pymysql.connect(
            host=p.host,
            port=p.port,
            user=p.user,
            password=p.password,
            database=p.database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=max(1, round(self._connect_timeout)),
            read_timeout=max(1, round(self._io_timeout)),
            write_timeout=max(1, round(self._io_timeout)),
        )

    def _run_transaction(self, fn: Callable[[SQLCursor], T], write: bool) -> T:
        import pymysql

        with self._lock:
            conn = self._idle.pop() if self._idle else None
        healthy = False
        try:
            if conn is None:
                conn = self._connect()
                conn.begin()
            else:
                try:
                    conn.begin()
                except (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError):
                    # An idle pooled connection the server closed (wait_timeout, restart): nothing ran on it
                    # yet, so dial afresh once.
                    try:
                        conn.close()
                    except Exception:
                        pass
                    conn = None
                    conn = self._connect()
                    conn.begin()
            try:
                result = fn(_MySQLCursor(conn))
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
            healthy = True
            return result
        except pymysql.err.IntegrityError as exc:
            healthy = True
            raise IntegrityViolation(str(exc)) from exc
        except pymysql.err.DataError as exc:
            healthy = True
            raise SQLError(f"MySQL rejected a value: {exc}") from exc
        except pymysql.err.ProgrammingError:
            healthy = True
            raise
        except (pymysql.err.MySQLError, OSError) as exc:
            raise StorageUnavailable(f"MySQL failed: {exc}") from exc
        except BaseException:
            healthy = True  # raised by the transaction function itself; the connection is fine
            raise
        finally:
            if conn is not None:
                if healthy and not self._closed:
                    with self._lock:
                        self._idle.append(conn)
                else:
                    try:
                        conn.close()
                    except Exception:
                        pass

    def _close_all(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            try:
                conn.close()
            except Exception:
                pass


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")


def check_schema_version(
    cur: SQLCursor, table: str, version: int, too_new: Callable[[str], Exception]
) -> int:
    """Record this code's schema ``version`` in a fresh database, or check the one already recorded.

    ``table`` is a one-row table ``(id, version)`` the store created (the row has ``id = 1``). A database
    recorded by a *newer* schema than ``version`` raises ``too_new(message)`` (the store's own error type):
    this code would misread it. Returns the version the database holds. Runs inside a transaction.
    """
    if not _IDENTIFIER.match(table):
        raise ValueError(f"not a table name: {table!r}")
    row = cur.fetchone(f"SELECT version FROM {table} WHERE id = 1")
    if row is None:
        cur.execute(f"INSERT INTO {table} (id, version) VALUES (1, ?)", (version,))
        return version
    found = int(row[0])
    if found > version:
        raise too_new(f"the database holds schema version {found} of {table}; this code knows {version}")
    return found


async def setup_schema(
    db: SQLDatabase,
    ddl: Sequence[str],
    *,
    version_table: str,
    version: int,
    too_new: Callable[[str], Exception],
) -> int:
    """Run a store's idempotent ``ddl`` and :func:`check_schema_version` in one transaction.

    Every SQL store sets up this way: its statements create what is missing (``CREATE TABLE IF NOT
    EXISTS``, one of them ``version_table``), then the recorded schema version is written or checked.
    Returns the version the database holds.
    """

    def tx(cur: SQLCursor) -> int:
        for statement in ddl:
            cur.execute(statement)
        return check_schema_version(cur, version_table, version, too_new)

    return await db.transaction(tx)


def open_database(location: str, **kwargs: Any) -> SQLDatabase:
    """A database from a location: a ``mysql://`` DSN, ``":memory:"``, or a SQLite file path."""
    if location.startswith(("mysql://", "mysql+pymysql://", "mariadb://")):
        return MySQLDatabase.from_dsn(location, **kwargs)
    if location.startswith("sqlite:///"):
        location = location[len("sqlite:///") :]
    return SQLiteDatabase(location, **kwargs)
