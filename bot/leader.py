"""Electing the one process that runs the scheduler.

APScheduler 3 must never share a job store between two running schedulers (measured: duplicate
runs and a dead scheduler loop), so processes sharing a database elect one. On PostgreSQL the
leader holds a session-level advisory lock on a connection of its own: when the process dies the
server drops the session and the lock with it, and a standby takes over at its next try (every
second). On SQLite, where several processes can only mean one machine, a file lock does the same.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger("huddle.leader")

#: pg_advisory_lock key: "huddle" in ASCII, so it is recognisable in pg_locks.
LOCK_KEY = 0x687564646C65

Callback = Callable[[], Awaitable[None]]


class Leadership:
    """Try to lead; call ``on_elected`` when this process wins and ``on_lost`` if it loses it."""

    def __init__(self, database_url: str, retry: float = 1.0, check: float = 2.0) -> None:
        self.url = make_url(database_url)
        self.retry = retry
        self.check = check
        self.is_leader = False
        self._task: asyncio.Task[None] | None = None
        self._lock_file: IO[bytes] | None = None

    def start(self, on_elected: Callback, on_lost: Callback) -> None:
        """Begin campaigning in the background."""
        self._task = asyncio.get_running_loop().create_task(self._campaign(on_elected, on_lost))

    async def stop(self) -> None:
        """Give up leadership (the lock is released with the connection or the file)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._release_file()
        self.is_leader = False

    async def _campaign(self, on_elected: Callback, on_lost: Callback) -> None:
        while True:
            try:
                if self.url.get_backend_name() == "postgresql":
                    await self._lead_on_postgres(on_elected, on_lost)
                else:
                    await self._lead_on_file(on_elected, on_lost)
            except asyncio.CancelledError:
                if self.is_leader:
                    self.is_leader = False
                    await on_lost()
                raise
            except Exception:
                log.exception("leader election failed; retrying")
                if self.is_leader:
                    self.is_leader = False
                    await on_lost()
            await asyncio.sleep(self.retry)

    async def _lead_on_postgres(self, on_elected: Callback, on_lost: Callback) -> None:
        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        try:
            while True:
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                    break
                await asyncio.sleep(self.retry)
            log.info("elected scheduler leader pid=%d backend=postgresql", os.getpid())
            self.is_leader = True
            await on_elected()
            while True:
                # If the server or the network drops us, the lock is gone: stop leading.
                await asyncio.sleep(self.check)
                await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=self.check)
        finally:
            if self.is_leader:
                self.is_leader = False
                log.warning("scheduler leadership lost pid=%d", os.getpid())
                await on_lost()
            await asyncio.shield(conn.close(timeout=2))

    async def _lead_on_file(self, on_elected: Callback, on_lost: Callback) -> None:
        database = self.url.database or ""
        path = Path(f"{database}.scheduler.lock") if database else None
        if path is not None:
            handle = path.open("wb")
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(self.retry)
            self._lock_file = handle
        log.info("elected scheduler leader pid=%d backend=file", os.getpid())
        self.is_leader = True
        await on_elected()
        await asyncio.Event().wait()  # held until stop() cancels us

    def _release_file(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
