"""The cached job store behaves like APScheduler's own SQLAlchemy store, and its table too."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from bot.jobstore import CachedJobStore
from bot.scheduler import JOB_DEFAULTS

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


def test_a_job_that_no_longer_unpickles_is_dropped_not_fatal(tmp_path: Path) -> None:
    scheduler = BackgroundScheduler(timezone=UTC)
    store = CachedJobStore(url=f"sqlite:///{tmp_path}/broken.db")
    store.start(scheduler, "default")
    store.add_job(make_job(scheduler, "good", T0))
    store._rows["bad"] = (T0.timestamp(), b"not a pickle")
    try:
        assert [job.id for job in store.get_all_jobs()] == ["good"]
        assert store.lookup_job("bad") is None
    finally:
        store.shutdown()
