"""SQLite connections for the store: aiosqlite, with one trip to its thread per statement.

aiosqlite runs every call on a thread of its own (one per connection), so the event loop never
waits for the file. SQLAlchemy's adapter turns each statement into four such calls: make a cursor,
run the statement, fetch its rows, close the cursor. Each is a round trip between two threads that
share the GIL: a queue put, a thread switch, a wake-up of the event loop through its self-pipe,
often the loop's thread preempted in between. Making and closing a cursor touch no file, so they
happen on the caller's thread here, and a statement's rows are fetched in the same trip that runs
it: a `/meet` takes 5 trips instead of 12 (measured in bench/commands.py: half the context
switches of the event loop's thread, a tenth less CPU).

This leans on aiosqlite's internals (``Connection._execute``, ``Connection._conn``,
``Cursor._cursor``), as SQLAlchemy's own aiosqlite dialect does; the store's tests run on it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from functools import partial
from typing import Any

import aiosqlite
from aiosqlite.context import contextmanager


class OneTripCursor(aiosqlite.Cursor):
    """Runs a statement and fetches all its rows in one call on the connection's thread."""

    def __init__(self, conn: aiosqlite.Connection, cursor: sqlite3.Cursor) -> None:
        super().__init__(conn, cursor)
        self._fetched: deque[Any] = deque()

    async def execute(self, sql: str, parameters: Any = None) -> OneTripCursor:
        """Run ``sql``; its rows wait here for the fetch calls."""
        rows = await self._execute(self._run, sql, parameters or ())  # type: ignore[no-untyped-call]
        self._fetched = deque(rows)
        return self

    def _run(self, sql: str, parameters: Any) -> list[Any]:
        # On the connection's thread: the statement, then every row it returns.
        self._cursor.execute(sql, parameters)
        return self._cursor.fetchall() if self._cursor.description else []

    async def fetchone(self) -> Any:
        """The next row, or None."""
        return self._fetched.popleft() if self._fetched else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        """Up to ``size`` rows (the cursor's ``arraysize`` by default)."""
        count = self.arraysize if size is None else size
        return [self._fetched.popleft() for _ in range(min(count, len(self._fetched)))]

    async def fetchall(self) -> list[Any]:
        """Every row not fetched yet."""
        rows = list(self._fetched)
        self._fetched.clear()
        return rows

    async def close(self) -> None:
        """Close the cursor (on the caller's thread: nothing is read or written)."""
        self._cursor.close()


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors are :class:`OneTripCursor`."""

    @contextmanager
    async def cursor(self) -> aiosqlite.Cursor:
        """A cursor, made on the caller's thread (the connection allows it: see ``connect``)."""
        return OneTripCursor(self, self._conn.cursor())


def connect(path: str, timeout: float) -> OneTripConnection:
    """A connection to the database file at ``path`` (``await`` it, as ``aiosqlite.connect``).

    Cursors are made and closed on the event loop's thread while the connection's own thread is
    idle (SQLAlchemy runs one statement at a time per connection), hence ``check_same_thread``.
    """
    connector = partial(sqlite3.connect, path, timeout=timeout, check_same_thread=False)
    connection = OneTripConnection(connector, iter_chunk_size=64)
    # As SQLAlchemy does for the connections it makes: never hold up the process's exit.
    thread = connection if isinstance(connection, threading.Thread) else connection._thread
    thread.daemon = True
    return connection
