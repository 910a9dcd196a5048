"""The scheduler: APScheduler 3 (`AsyncIOScheduler`) with its job store in our database.

Only the elected leader runs it (:mod:`bot.leader`). The meetings tables are the truth; the job
store holds what is due next for each meeting, derived by :meth:`MeetingService.plan`. The leader
re-plans a meeting when it changes (it polls ``meetings.updated_at``, so a change made by any
process is seen within a poll) and after each start, which plans the next occurrence.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.engine import make_url

from bot.jobstore import CachedJobStore
from bot.leader import Leadership
from bot.meetings import MeetingService, PlannedJob, occurrence_key, parse_occurrence_key
from bot.minutes import Minutes
from bot.types import Clock, utc_now

log = logging.getLogger("huddle.scheduler")

#: Running schedulers by database, so a persisted job finds the service that owns its store.
_ACTIVE: dict[str, MeetingScheduler] = {}

JOB_TABLE = "scheduler_jobs"

#: How long losing the lead (or stopping) waits for jobs already running to finish: a job cut
#: mid-transaction leaves a half-done start, and its database connection broken.
DRAIN_SECONDS = 30.0

JOB_DEFAULTS: dict[str, Any] = {
    # No grace limit: a job missed while no scheduler ran still runs on restart, and the job
    # itself decides (a reminder is posted "late" before the start, skipped after it). The 1 s
    # default would silently drop everything missed in a restart.
    "misfire_grace_time": None,
    # Several missed runs of one job collapse into one run: one late reminder, not N.
    "coalesce": True,
    "max_instances": 1,
}


def job_store_url(database_url: str) -> str:
    """Where the job store lives: the same database, through a synchronous driver.

    APScheduler 3's job store is synchronous and runs on the event loop's thread. On PostgreSQL
    that is harmless (its table is locked by nobody else), so the jobs live in the same database.
    SQLite has one writer per file: the loop blocked in a job store write, waiting for a lock held
    by an async transaction that needs the loop to finish, deadlocks. So on SQLite the jobs live
    in a sibling file beside the database (``huddle.db`` -> ``huddle.scheduler.db``).
    """
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    database = url.database or ""
    stem = database[: -len(".db")] if database.endswith(".db") else database
    return url.set(drivername="sqlite", database=f"{stem}.scheduler.db").render_as_string()


def store_key(database_url: str) -> str:
    """A short stable name for a database, carried in every job's arguments."""
    return hashlib.sha256(make_url(database_url).render_as_string().encode()).hexdigest()[:16]


async def run_job(store: str, kind: str, meeting_id: str, occurrence: str, due: str) -> None:
    """What every persisted job calls (APScheduler stores this function by its import path)."""
    scheduler = _ACTIVE.get(store)
    if scheduler is None:
        log.error("job fired with no scheduler for its store kind=%s meeting=%s", kind, meeting_id)
        return
    await scheduler.run(
        kind, meeting_id, parse_occurrence_key(occurrence), datetime.fromisoformat(due)
    )


class MeetingScheduler:
    """Keeps APScheduler's jobs in step with the meetings, on the leader only."""

    def __init__(
        self,
        database_url: str,
        meetings: MeetingService,
        minutes: Minutes,
        poll: float = 1.0,
        leadership: Leadership | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.database_url = database_url
        self.meetings = meetings
        self.minutes = minutes
        self.poll = poll
        self.key = store_key(database_url)
        self.leadership = leadership or Leadership(database_url)
        self.scheduler: AsyncIOScheduler | None = None
        self._poller: asyncio.Task[None] | None = None
        self._seen: datetime | None = None
        self._items_seen: datetime | None = None
        self._sync_lock = asyncio.Lock()
        #: Jobs running now (their tasks): waited for before the scheduler lets go.
        self._running: set[asyncio.Task[Any]] = set()
        #: Jobs are planned on the product's clock; APScheduler fires them by the system's.
        self.clock = clock

    @property
    def is_leader(self) -> bool:
        """Whether this process runs the scheduler now."""
        return self.scheduler is not None

    def start(self) -> None:
        """Campaign for leadership; the scheduler starts when elected."""
        self.leadership.start(self._elected, self._lost)

    async def stop(self) -> None:
        """Stop scheduling (jobs stay in the store for the next leader)."""
        await self.leadership.stop()
        await self._lost()

    async def _elected(self) -> None:
        # The table APScheduler's SQLAlchemy store would use, read once and written behind
        # (bot/jobstore.py: the stock store falls seconds behind at 1,000 jobs/s).
        store = CachedJobStore(url=job_store_url(self.database_url), tablename=JOB_TABLE)
        scheduler = AsyncIOScheduler(
            jobstores={"default": store}, job_defaults=JOB_DEFAULTS, timezone=UTC
        )
        _ACTIVE[self.key] = self
        scheduler.start()
        self.scheduler = scheduler
        # Everything might have changed while nobody led: re-plan every scheduled meeting.
        self._seen = self._items_seen = None
        await self.sync_changed()
        self._poller = asyncio.get_running_loop().create_task(self._poll())
        # Platforms that mirror meetings (Discord events) catch up on what they may have missed.
        for meeting in await self.meetings.store.scheduled_meetings():
            await self.meetings.mirror(meeting.id)

    async def _lost(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        if self.scheduler is not None:
            # No new job fires; those under way finish (APScheduler's shutdown would cancel them
            # wherever they are, a query included, and not wait for them to unwind).
            self.scheduler.pause()
            running = set(self._running)
            if running:
                _, late = await asyncio.wait(running, timeout=DRAIN_SECONDS)
                for task in late:
                    log.error("job still running after %ss; cancelled", DRAIN_SECONDS)
                    task.cancel()
                if late:
                    await asyncio.wait(late, timeout=DRAIN_SECONDS)
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        if _ACTIVE.get(self.key) is self:
            del _ACTIVE[self.key]

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                await self.sync_changed()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler poll failed")

    async def sync_changed(self) -> int:
        """Re-plan meetings and action items changed since the last look (all, the first time)."""
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        store = self.meetings.store
        async with self._sync_lock:
            meetings = await store.meetings_changed_since(self._seen or epoch)
            for meeting_id, _ in meetings:
                await self._sync(meeting_id)
            items = await store.action_items_changed_since(self._items_seen or epoch)
            for item_id, _ in items:
                await self._sync(f"item:{item_id}")
            # Rows changed in the same instant as the last one seen are looked at again.
            if meetings:
                self._seen = meetings[-1][1]
            if items:
                self._items_seen = items[-1][1]
            return len(meetings) + len(items)

    async def sync(self, target: str) -> None:
        """Re-plan a meeting (or ``item:<id>``) now, when this process leads.

        Elsewhere the leader's poll of ``updated_at`` picks the change up within a second.
        """
        if self.scheduler is None:
            return
        async with self._sync_lock:
            await self._sync(target)

    async def _sync(self, target: str) -> None:
        scheduler = self.scheduler
        if scheduler is None:
            return
        if target.startswith("item:"):
            planned = await self.minutes.plan_item(target.removeprefix("item:"))
        else:
            planned = await self.meetings.plan(target)
        skew = self._skew()
        for job in planned:
            existing = scheduler.get_job(job.job_id)
            if existing is not None and existing.next_run_time == job.run_at - skew:
                continue
            self._add(scheduler, job, skew)

    def _skew(self) -> timedelta:
        # How far the product's clock is ahead of the system's: zero in production, a fixed
        # instant's distance in tests. To the millisecond, so a job planned twice compares equal.
        skew = self.clock() - datetime.now(UTC)
        return timedelta(milliseconds=round(skew.total_seconds() * 1000))

    def _add(self, scheduler: AsyncIOScheduler, job: PlannedJob, skew: timedelta) -> None:
        args: list[Any] = [
            self.key,
            job.kind,
            job.meeting_id,
            occurrence_key(job.occurrence),
            job.run_at.isoformat(),
        ]
        scheduler.add_job(
            run_job,
            trigger="date",
            run_date=job.run_at - skew,
            id=job.job_id,
            args=args,
            replace_existing=True,
        )

    async def run(self, kind: str, meeting_id: str, occurrence: datetime, due: datetime) -> None:
        """Do one job; after a start, plan the meeting's next occurrence."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            if kind == "agenda":
                await self.meetings.post_agenda(meeting_id, occurrence)
            elif kind == "remind":
                await self.meetings.remind(meeting_id, occurrence, due)
            elif kind == "start":
                await self.meetings.start(meeting_id, occurrence)
                await self.sync(meeting_id)
            elif kind == "followup":
                await self.minutes.follow_up(meeting_id)
            else:
                log.error("unknown job kind=%s meeting=%s", kind, meeting_id)
        except Exception:
            log.exception(
                "job failed kind=%s meeting=%s occurrence=%s", kind, meeting_id, occurrence
            )
        finally:
            if task is not None:
                self._running.discard(task)
