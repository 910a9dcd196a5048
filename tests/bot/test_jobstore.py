"""The cached job store behaves like APScheduler's own SQLAlchemy store, and its table too."""

from __future__ import annotations

import asyncio
import pickle
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import create_engine, text

from bot.jobstore import CachedJobStore
from bot.scheduler import JOB_DEFAULTS, JOB_TABLE, job_store_url

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def make_job(scheduler: BackgroundScheduler, job_id: str, at: datetime | None) -> Job:
    run_date = at or T0
    return Job(
        scheduler,
        id=job_id,
        func="bot.scheduler:run_job",
        trigger=DateTrigger(run_date=run_date, timezone=UTC),
        executor="default",
        args=["store", "remind", job_id, "20261122T120000Z", run_date.isoformat()],
        kwargs={},
        name=job_id,
        next_run_time=at,  # None: paused
        **JOB_DEFAULTS,
    )


def view(store: BaseJobStore, now: datetime) -> tuple[object, ...]:
    """What a scheduler sees; jobs due at the same second, and paused ones, in any order."""
    jobs = store.get_all_jobs()
    scheduled = [(job.next_run_time, job.id) for job in jobs if job.next_run_time]
    assert [at for at, _ in scheduled] == sorted(at for at, _ in scheduled)
    return (
        sorted(scheduled),
        sorted(job.id for job in jobs if job.next_run_time is None),
        sorted(job.id for job in store.get_due_jobs(now)),
        store.get_next_run_time(),
    )


def test_random_operations_match_the_stock_store_and_survive_a_reload(tmp_path: Path) -> None:
    scheduler = BackgroundScheduler(timezone=UTC)
    cached = CachedJobStore(url=f"sqlite:///{tmp_path}/cached.db")
    stock = SQLAlchemyJobStore(url=f"sqlite:///{tmp_path}/stock.db")
    for store in (cached, stock):
        store.start(scheduler, "default")
    rng = random.Random(7)
    ids = [f"job-{n}" for n in range(40)]
    for step in range(600):
        job_id = rng.choice(ids)
        at = rng.choice([None, T0 + timedelta(seconds=rng.randint(-100, 100))])
        operation = rng.choice(["add", "add", "update", "remove", "lookup", "remove_all"])
        if operation == "remove_all" and rng.random() > 0.05:
            operation = "lookup"
        outcomes = []
        for store in (cached, stock):
            try:
                if operation == "add":
                    store.add_job(make_job(scheduler, job_id, at))
                elif operation == "update":
                    store.update_job(make_job(scheduler, job_id, at))
                elif operation == "remove":
                    store.remove_job(job_id)
                elif operation == "remove_all":
                    store.remove_all_jobs()
                else:
                    found = store.lookup_job(job_id)
                    outcomes.append(found.next_run_time if found else "missing")
                    continue
                outcomes.append("ok")
            except (ConflictingIdError, JobLookupError) as exc:
                outcomes.append(type(exc).__name__)
        assert outcomes[0] == outcomes[1], (step, operation, job_id, outcomes)
        now = T0 + timedelta(seconds=rng.randint(-100, 100))
        assert view(cached, now) == view(stock, now), step
    assert cached.flush(timeout=10)
    expected = view(cached, T0)
    cached.shutdown()
    # What was written behind is what a new leader reads back.
    reloaded = CachedJobStore(url=f"sqlite:///{tmp_path}/cached.db")
    reloaded.start(scheduler, "default")
    try:
        assert view(reloaded, T0) == expected
        assert expected[0] and expected[1], "the walk should leave scheduled and paused jobs"
    finally:
        reloaded.shutdown()
        stock.shutdown()


def ran(token: str) -> None:
    """A job's function: tell the test waiting on ``token`` that its job ran."""
    RUNS[token].set()


#: Jobs of :func:`ran` that have run, by the token in their arguments.
RUNS: dict[str, threading.Event] = {}


def runnable_job(scheduler: BaseScheduler, job_id: str, at: datetime) -> Job:
    """A job whose function exists (:func:`ran`), due at ``at``."""
    RUNS[job_id] = threading.Event()
    return Job(
        scheduler,
        id=job_id,
        func=f"{__name__}:ran",
        trigger=DateTrigger(run_date=at, timezone=UTC),
        executor="default",
        args=[job_id],
        kwargs={},
        name=job_id,
        next_run_time=at,
        **JOB_DEFAULTS,
    )


def write_bad_rows(url: str, due: datetime) -> None:
    """Put a good job and two rows that no longer load in the product's job table (``url``).

    One is not a pickle at all; the other is a job whose function is gone (renamed in a later
    version, say). Both are due before the good job, one is paused.
    """
    scheduler = BackgroundScheduler(timezone=UTC)
    store = CachedJobStore(url=url, tablename=JOB_TABLE)
    store.start(scheduler, "default")
    try:
        store.add_job(runnable_job(scheduler, "good", due))
        gone = runnable_job(scheduler, "gone", due - timedelta(seconds=1)).__getstate__()
        gone["func"] = "bot.renamed_long_ago:run_job"
        assert store.flush(timeout=30)
        with store.engine.begin() as connection:
            connection.execute(
                store.jobs_t.insert(),
                [
                    {
                        "id": "garbage",
                        "next_run_time": (due - timedelta(seconds=2)).timestamp(),
                        "job_state": b"not a pickle",
                    },
                    {"id": "gone", "next_run_time": None, "job_state": pickle.dumps(gone)},
                ],
            )
    finally:
        store.shutdown()


def table_ids(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return sorted(connection.scalars(text(f"SELECT id FROM {JOB_TABLE}")))
    finally:
        engine.dispose()


async def test_rows_that_no_longer_load_are_dropped_at_start_with_a_log_line(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = job_store_url(database_url)
    write_bad_rows(url, T0)
    assert table_ids(url) == ["garbage", "gone", "good"]

    store = CachedJobStore(url=url, tablename=JOB_TABLE)
    store.start(BackgroundScheduler(timezone=UTC), "default")
    try:
        assert [job.id for job in store.get_all_jobs()] == ["good"]
        assert [job.id for job in store.get_due_jobs(T0)] == ["good"]
        assert store.get_next_run_time() == T0
        assert store.lookup_job("garbage") is None and store.lookup_job("gone") is None
        assert store.flush(timeout=30)
    finally:
        store.shutdown()
    for job_id in ("garbage", "gone"):
        assert f'Unable to restore job "{job_id}" -- removing it' in caplog.text
    # Removed from the table too: the next leader does not trip over them again.
    assert table_ids(url) == ["good"]


async def test_the_good_jobs_still_run_beside_rows_that_no_longer_load(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = job_store_url(database_url)
    write_bad_rows(url, datetime.now(UTC) - timedelta(seconds=1))  # all due at once

    scheduler = BackgroundScheduler(
        jobstores={"default": CachedJobStore(url=url, tablename=JOB_TABLE)},
        job_defaults=JOB_DEFAULTS,
        timezone=UTC,
    )
    scheduler.start()
    try:
        assert await asyncio.to_thread(RUNS["good"].wait, 30), "the good job never ran"
        # The good job ran (its trigger is done) and the bad due row went; nothing due asked for
        # the paused one. The scheduler's thread removes a finished job after running it: on a
        # loaded machine that lands a while later, so wait for it (before the shutdown).
        for _ in range(300):
            if await asyncio.to_thread(table_ids, url) == ["gone"]:
                break
            await asyncio.sleep(0.1)
    finally:
        scheduler.shutdown()
    assert 'Unable to restore job "garbage" -- removing it' in caplog.text
    assert table_ids(url) == ["gone"]
