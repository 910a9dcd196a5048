"""Scheduler benchmark: 100,000 pending reminders in the persistent job store.

10,000 meetings x 10 reminders = 100,000 one-shot ``date`` jobs of the kind ``MeetingScheduler``
adds (``bot.scheduler:run_job`` with its small string arguments, the product's job defaults and
time zone), due evenly over a 100 s window: 1,000 jobs/s (``--quick``: 10x fewer jobs, same
rate). Stores compared, each in processes of its own:

- ``product``: the job store exactly as ``MeetingScheduler`` builds it: ``bot.jobstore``'s
  ``CachedJobStore`` (reads from memory, writes batched on a thread) on ``job_store_url`` (a
  sibling SQLite file, or the same PostgreSQL database through psycopg);
- ``stock``: APScheduler's own ``SQLAlchemyJobStore`` on the same table and engine, what the
  product used before (one DELETE per fired job and two queries per wake-up, on the event loop);
- ``engine`` (only with ``--config``): the stock store on an engine that does not wait for disks;
- ``memory``: APScheduler's ``MemoryJobStore``, the baseline. One runs beside every store above,
  at the same time and with the same window, so both see the same machine (other processes may
  be busy on it): every number is given beside the baseline's.

For a store, the first process times adding a sample one by one while the scheduler runs (as
``MeetingScheduler._sync`` does), the same paused, and in one transaction straight into the table;
fills the store (RSS after); fires the first half of the window; then dies (``os._exit``, nothing
shut down) with the other half pending. A second process starts on the same store, as a restart:
time until the scheduler runs, until the first job runs, until jobs run on time again, and until
the re-plan ``MeetingScheduler`` does on election (``get_job`` for every pending job) is through;
it fires the rest. Each job notes when it ran, inside ``run_job``, into a memory-mapped file, so a
crash loses nothing of the record: lateness is that time minus the scheduled time, and jobs lost
or run twice across the crash are counted.

Output: one JSON line per database and store, then one per database on the goal (p99 lateness
under 100 ms with everything persistent). Progress goes to stderr. The full run takes about
9 minutes (a store that cannot keep up is cut off 15 s after its window).

    .venv/bin/python bench/scheduler.py                      # full run, both databases
    .venv/bin/python bench/scheduler.py --quick              # 10,000 jobs, about a minute
    .venv/bin/python bench/scheduler.py --database sqlite --config product,stock,engine
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import mmap
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url

import bot.scheduler
from bot.jobstore import CachedJobStore
from bot.meetings import PlannedJob, occurrence_key
from bot.scheduler import (
    JOB_DEFAULTS,
    JOB_TABLE,
    MeetingScheduler,
    job_store_url,
    run_job,
    store_key,
)

IMPORTED = time.time()

#: The issue's goal: p99 firing lateness under this, with everything persistent.
GOAL_P99_MS = 100.0
#: A job this late or later is "late" when timing the recovery after a restart.
ON_TIME_S = 0.1
#: The first process dies (holding the rest pending) after this share of the window.
CRASH_AT = 0.5
#: Seconds between filling the store and the first job's run time, beyond the fill estimate.
LEAD_S = 3.0
#: Jobs per transaction when filling the store.
FILL_CHUNK = 1000
#: The stores: the baseline, the product's, APScheduler's stock one, and tuning alone (not default).
STORES = ("memory", "product", "stock", "engine")


def _emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def _progress(message: str) -> None:
    print(f"[scheduler] {message}", file=sys.stderr, flush=True)


def product_job_defaults() -> dict[str, Any]:
    """The job defaults ``MeetingScheduler`` gives APScheduler."""
    return dict(JOB_DEFAULTS)


def rss_mb() -> float:
    """This process's resident set size (VmRSS), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


# -- the workload ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """``meetings`` x ``reminders`` jobs due evenly over ``window_s`` from ``t_start`` (epoch s)."""

    meetings: int
    reminders: int
    window_s: float
    t_start: float = 0.0

    @property
    def jobs(self) -> int:
        return self.meetings * self.reminders

    @property
    def step(self) -> float:
        return self.window_s / self.jobs

    def due(self, index: int) -> float:
        return self.t_start + index * self.step

    def index(self, due: float) -> int:
        return round((due - self.t_start) / self.step)

    def planned(self, first: int = 0, last: int | None = None) -> Iterator[PlannedJob]:
        """Jobs by due time; job ``i`` is reminder ``i // meetings`` of meeting ``i % meetings``."""
        base = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
        for i in range(first, self.jobs if last is None else last):
            meeting, reminder = i % self.meetings, i // self.meetings
            run_at = datetime.fromtimestamp(self.due(i), UTC)
            # One weekly occurrence per reminder: job ids stay unique, as in the product.
            occurrence = base + timedelta(weeks=reminder)
            yield PlannedJob("remind", f"m{meeting:06d}", occurrence, run_at)

    def by_meeting(self, first: int, last: int) -> Iterator[list[PlannedJob]]:
        """The jobs due in [first, last), grouped by meeting (the product adds per meeting)."""
        groups: dict[str, list[PlannedJob]] = {}
        for job in self.planned(first, last):
            groups.setdefault(job.meeting_id, []).append(job)
        yield from groups.values()


class LatenessRecorder:
    """Stands in for ``MeetingScheduler`` behind ``run_job``: notes when each job ran.

    Into a file mapped in memory, one slot per job (0.0 until it runs), so what a process did
    before it died is on disk without any saving at the end: the parent reads the file.
    """

    def __init__(self) -> None:
        self.work: Workload | None = None
        self.ran: memoryview[float] | None = None
        self.again = 0

    def attach(self, work: Workload, path: Path) -> None:
        """Start recording the jobs of ``work`` into ``path``."""
        with path.open("wb") as file:
            file.truncate(8 * work.jobs)
        with path.open("r+b") as file:
            mapped = mmap.mmap(file.fileno(), 8 * work.jobs)
        self.work, self.ran = work, memoryview(mapped).cast("d")

    async def run(self, kind: str, meeting_id: str, occurrence: datetime, due: datetime) -> None:
        now = time.time()
        if self.work is None or self.ran is None:
            return
        index = self.work.index(due.timestamp())
        if self.ran[index]:
            self.again += 1
        else:
            self.ran[index] = now


def read_runs(path: Path) -> dict[int, list[float]]:
    """Job index -> the times it ran, from a recorder's file."""
    ran = array("d")
    ran.frombytes(path.read_bytes())
    path.unlink()
    return {index: [moment] for index, moment in enumerate(ran) if moment}


def job_args(key: str, job: PlannedJob) -> list[Any]:
    """``MeetingScheduler._add``'s arguments for ``run_job``."""
    return [key, job.kind, job.meeting_id, occurrence_key(job.occurrence), job.run_at.isoformat()]


def add_like_product(scheduler: AsyncIOScheduler, key: str, job: PlannedJob) -> None:
    """What ``MeetingScheduler._add`` does."""
    scheduler.add_job(
        run_job,
        trigger="date",
        run_date=job.run_at,
        id=job.job_id,
        args=job_args(key, job),
        replace_existing=True,
    )


def make_job(scheduler: AsyncIOScheduler, key: str, job: PlannedJob) -> Job:
    """The ``Job`` that ``add_like_product`` would store, built without touching the store."""
    built = Job(
        scheduler,
        id=job.job_id,
        func=run_job,
        trigger=DateTrigger(job.run_at),
        executor="default",
        args=tuple(job_args(key, job)),
        kwargs={},
        name=None,
        next_run_time=job.run_at,
        **scheduler._job_defaults,
    )
    return built


# -- the stores -----------------------------------------------------------------------------------


def stock_store(database_url: str) -> SQLAlchemyJobStore:
    """APScheduler's own store on the product's table and engine (what the product used first)."""
    return SQLAlchemyJobStore(url=job_store_url(database_url), tablename=JOB_TABLE)


def engine_tuned_store(database_url: str) -> BaseJobStore:
    """Tuning alone, for comparison: the stock store on an engine that does not wait for disks."""
    url = job_store_url(database_url)
    if make_url(url).get_backend_name() != "sqlite":
        engine = create_engine(url, connect_args={"options": "-c synchronous_commit=off"})
    else:
        engine = create_engine(url)

        @event.listens_for(engine, "connect")
        def pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)


def product_store(database_url: str) -> BaseJobStore:
    """The job store exactly as ``MeetingScheduler._elected`` builds it."""
    return CachedJobStore(url=job_store_url(database_url), tablename=JOB_TABLE)


def build_scheduler(store_name: str, database_url: str) -> AsyncIOScheduler:
    """An ``AsyncIOScheduler`` configured as the product's, on the store under test."""
    store: BaseJobStore
    if store_name == "memory":
        store = MemoryJobStore()
    elif store_name == "stock":
        store = stock_store(database_url)
    elif store_name == "engine":
        store = engine_tuned_store(database_url)
    else:
        store = product_store(database_url)
    return AsyncIOScheduler(
        jobstores={"default": store}, job_defaults=product_job_defaults(), timezone=UTC
    )


def bulk_add(scheduler: AsyncIOScheduler, key: str, jobs: list[PlannedJob]) -> None:
    """All of ``jobs`` in one transaction, straight into the store (the memory store: paused)."""
    store = scheduler._lookup_jobstore("default")
    if not isinstance(store, SQLAlchemyJobStore) or isinstance(store, CachedJobStore):
        # The cached store batches its writes itself: adding while paused is its bulk add.
        scheduler.pause()
        for job in jobs:
            add_like_product(scheduler, key, job)
        scheduler.resume()
        return
    rows = [
        {
            "id": built.id,
            "next_run_time": datetime_to_utc_timestamp(built.next_run_time),
            "job_state": pickle.dumps(built.__getstate__(), store.pickle_protocol),
        }
        for built in (make_job(scheduler, key, job) for job in jobs)
    ]
    with store.engine.begin() as connection:
        connection.execute(store.jobs_t.insert(), rows)
    scheduler.wakeup()


class StoreTimer:
    """Wraps a job store's methods to add up the time the event loop spends in each."""

    METHODS = (
        "get_due_jobs",
        "get_next_run_time",
        "lookup_job",
        "add_job",
        "update_job",
        "remove_job",
    )

    def __init__(self, store: BaseJobStore) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(self.METHODS, 0.0)
        self.calls: dict[str, int] = dict.fromkeys(self.METHODS, 0)
        for name in self.METHODS:
            setattr(store, name, self._timed(name, getattr(store, name)))

    def _timed(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        return timed

    def reset(self) -> None:
        for name in self.METHODS:
            self.seconds[name] = 0.0
            self.calls[name] = 0

    def report(self) -> dict[str, Any]:
        return {
            name: {
                "calls": self.calls[name],
                "total_s": round(self.seconds[name], 3),
                "per_call_ms": round(1000 * self.seconds[name] / self.calls[name], 3),
            }
            for name in self.METHODS
            if self.calls[name]
        }


# -- the two lives of a store (child processes) ---------------------------------------------------


@dataclass
class LifeSpec:
    """What a child process is told to do (passed as JSON)."""

    life: str  # "first" or "second"
    store: str
    database_url: str
    result: str
    workload: dict[str, Any]
    sample: int = 0
    #: The first life dies after this share of the window.
    crash_at: float = CRASH_AT
    spawned: float = 0.0
    deadline: float = 0.0

    @property
    def runs_path(self) -> Path:
        """Where the recorder notes when each job ran."""
        return Path(self.result).with_suffix(".runs")


def _finish(spec: LifeSpec, result: dict[str, Any], recorder: LatenessRecorder) -> None:
    """Write the result and die at once: no shutdown, as if killed (the store is left as is)."""
    result["ran_again"] = recorder.again
    Path(spec.result).write_text(json.dumps(result))
    os._exit(0)


def _at(moment: float, action: Callable[[], None]) -> None:
    """Run ``action`` at ``moment`` (epoch s) on a thread: it happens even while the event loop
    is stuck in a synchronous job store call, as a kill would."""
    timer = threading.Timer(max(0.0, moment - time.time()), action)
    timer.daemon = True
    timer.start()


class GcPauses:
    """Times the garbage collector's pauses (a full collection over 100,000 jobs is slow)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def reset(self) -> None:
        for pauses in self.pauses.values():
            pauses.clear()

    def report(self) -> dict[str, Any]:
        return {
            f"gen{generation}": {
                "count": len(pauses),
                "total_ms": round(1000 * sum(pauses), 1),
                "max_ms": round(1000 * max(pauses), 1),
            }
            for generation, pauses in self.pauses.items()
            if pauses
        }


def _register(key: str) -> LatenessRecorder:
    recorder = LatenessRecorder()
    bot.scheduler._ACTIVE[key] = cast(MeetingScheduler, recorder)
    return recorder


async def _add_sample(
    scheduler: AsyncIOScheduler, key: str, sample: Workload, how: str
) -> dict[str, Any]:
    """Add ``sample``'s jobs (far in the future) one way, then remove them; return the timing."""
    jobs = [job for group in sample.by_meeting(0, sample.jobs) for job in group]
    started = time.perf_counter()
    if how == "running":
        # As MeetingScheduler._sync: job by job, the loop free between meetings (the product
        # awaits the meetings table there), so every add's wake-up runs in between.
        for group in sample.by_meeting(0, sample.jobs):
            for job in group:
                add_like_product(scheduler, key, job)
            await asyncio.sleep(0)
    elif how == "paused":
        scheduler.pause()
        for job in jobs:
            add_like_product(scheduler, key, job)
        scheduler.resume()
    else:
        bulk_add(scheduler, key, jobs)
    await asyncio.sleep(0)  # the last wake-ups run
    await _flushed(scheduler)
    seconds = time.perf_counter() - started
    scheduler.remove_all_jobs()
    return {"jobs": len(jobs), "s": round(seconds, 3), "per_job_ms": 1000 * seconds / len(jobs)}


async def _flushed(scheduler: AsyncIOScheduler) -> None:
    """Wait until the store's writes are committed (only the cached store writes behind)."""
    store = scheduler._lookup_jobstore("default")
    if isinstance(store, CachedJobStore):
        await asyncio.to_thread(store.flush)


async def _until(moment: float) -> None:
    delay = moment - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def first_life(spec: LifeSpec) -> None:
    """Measure adding, fill the store, fire the first part of the window, then die."""
    rss_start = rss_mb()
    pauses = GcPauses()
    key = store_key(spec.database_url)
    recorder = _register(key)
    scheduler = build_scheduler(spec.store, spec.database_url)
    scheduler.start()
    store = scheduler._lookup_jobstore("default")
    timer = StoreTimer(store)
    result: dict[str, Any] = {"rss_start_mb": rss_start, "add": {}}

    # Warm up (the first add loads APScheduler's trigger plugins).
    await _add_sample(scheduler, key, Workload(1, 1, 1.0, t_start=time.time() + 86400), "running")
    for how in ("running", "paused", "bulk"):
        # The bulk sample is larger: it also sizes the lead before the window opens.
        size = spec.sample * (10 if how == "bulk" else 1)
        sample = Workload(size // 10, 10, size, t_start=time.time() + 86400)
        result["add"][how] = await _add_sample(scheduler, key, sample, how)
        _progress(f"{spec.store}: add {how}: {result['add'][how]['per_job_ms']:.3f} ms/job")

    # The window opens once every store of the run has surely been filled: the parent takes
    # each one's estimate and answers with the opening time (the same for every store).
    shape = Workload(**spec.workload)
    per_job = result["add"]["bulk"]["per_job_ms"] / 1000
    print(json.dumps({"fill_estimate_s": 1.5 * per_job * shape.jobs}), flush=True)
    answer = json.loads(await asyncio.to_thread(sys.stdin.readline))
    work = Workload(shape.meetings, shape.reminders, shape.window_s, t_start=answer["t_start"])
    recorder.attach(work, spec.runs_path)
    started = time.perf_counter()
    # In chunks, so that the RSS measured after is the jobs', not a 100,000-row list's.
    for first in range(0, work.jobs, FILL_CHUNK):
        bulk_add(scheduler, key, list(work.planned(first, first + FILL_CHUNK)))
    await _flushed(scheduler)
    fill_s = time.perf_counter() - started
    result["add"]["fill"] = {"jobs": work.jobs, "per_job_ms": 1000 * fill_s / work.jobs}
    result["rss_filled_mb"] = rss_mb()
    result["workload"] = asdict(work)
    if time.time() > work.t_start:
        result["warning"] = "the fill overran the lead: the first jobs were due before it ended"
    _progress(f"{spec.store}: filled {work.jobs} jobs in {fill_s:.1f} s, RSS {rss_mb()} MB")

    crash_at = work.t_start + spec.crash_at * work.window_s
    result["crash_planned"] = crash_at
    await _until(work.t_start)
    timer.reset()
    pauses.reset()

    def crash() -> None:
        result["crashed"] = time.time()
        result["store_time"] = timer.report()
        result["gc"] = pauses.report()
        _finish(spec, result, recorder)

    _at(crash_at, crash)
    await asyncio.Event().wait()


async def second_life(spec: LifeSpec) -> None:
    """Restart on the same store: time to run, to fire, to be on time, to re-plan; fire the rest."""
    key = store_key(spec.database_url)
    recorder = _register(key)
    work = Workload(**spec.workload)
    recorder.attach(work, spec.runs_path)
    pauses = GcPauses()
    scheduler = build_scheduler(spec.store, spec.database_url)
    timer = StoreTimer(scheduler._lookup_jobstore("default"))
    result: dict[str, Any] = {"clean": False, "imported": IMPORTED}

    def give_up() -> None:
        # The loop is stuck in the store: count what is left through a connection of our own.
        result["ended"] = time.time()
        result["store_time"] = timer.report()
        result["gc"] = pauses.report()
        result["left_in_store"] = _count_jobs(spec.database_url, spec.store)
        _finish(spec, result, recorder)

    _at(spec.deadline + 10.0, give_up)
    scheduler.start()
    result["started"] = time.time()
    result["rss_started_mb"] = rss_mb()
    await asyncio.sleep(0)  # the first wake-up: everything overdue is submitted
    result["first_wakeup_done"] = time.time()

    # The re-plan on election (MeetingScheduler.sync_changed -> _sync): for every meeting, each
    # planned job is looked up and left alone when its run time is unchanged.
    mismatched = 0
    first = max(0, min(work.jobs, work.index(time.time()) + 1))
    for group in work.by_meeting(first, work.jobs):
        for job in group:
            existing = scheduler.get_job(job.job_id)
            if existing is None or existing.next_run_time != job.run_at:
                mismatched += 1
        await asyncio.sleep(0)
    result["replanned"] = time.time()
    result["replan_checked"] = work.jobs - first
    result["replan_mismatched"] = mismatched

    await _until(spec.deadline)
    scheduler.pause()
    for _ in range(3):
        await asyncio.sleep(0)  # jobs already submitted run
    await _flushed(scheduler)
    result["ended"] = time.time()
    result["clean"] = True
    result["store_time"] = timer.report()
    result["gc"] = pauses.report()
    result["left_in_store"] = _count_jobs(spec.database_url, spec.store)
    _finish(spec, result, recorder)


def _count_jobs(database_url: str, store: str) -> int:
    """Jobs left in the persistent store (read through an engine of our own)."""
    engine = create_engine(job_store_url(database_url))
    try:
        with engine.connect() as connection:
            table = text(JOB_TABLE)
            count = connection.execute(select(func.count()).select_from(table)).scalar_one()
            return int(count)
    finally:
        engine.dispose()


def child_main(raw: str) -> None:
    spec = LifeSpec(**json.loads(raw))
    asyncio.run(first_life(spec) if spec.life == "first" else second_life(spec))


# -- the parent: run the lives, compute the numbers -----------------------------------------------


def _spawn(spec: LifeSpec) -> subprocess.Popen[str]:
    spec.spawned = time.time()
    return subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(asdict(spec))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _collect(process: subprocess.Popen[str], spec: LifeSpec, timeout: float) -> dict[str, Any]:
    try:
        status = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        status = process.wait()
    path = Path(spec.result)
    if status != 0 or not path.exists():
        raise RuntimeError(f"the {spec.life} life of {spec.store} failed (status {status})")
    result: dict[str, Any] = json.loads(path.read_text())
    path.unlink()
    return result


def first_lives(specs: list[LifeSpec]) -> list[subprocess.Popen[str]]:
    """Start first lives side by side; their windows open at the same moment."""
    processes = [_spawn(spec) for spec in specs]
    estimates = []
    for process, spec in zip(processes, specs, strict=True):
        assert process.stdout is not None
        ready = process.stdout.readline()
        if not ready:
            raise RuntimeError(f"the first life of {spec.store} failed (status {process.wait()})")
        estimates.append(json.loads(ready)["fill_estimate_s"])
    opens = time.time() + max(estimates) + LEAD_S
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(json.dumps({"t_start": opens}) + "\n")
        process.stdin.flush()
    return processes


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def lateness(values: list[float], censored: int = 0) -> dict[str, Any]:
    """p50/p99/max in ms; ``censored`` jobs had not run yet (their lateness is a lower bound)."""
    if not values:
        return {"jobs": 0}
    return {
        "jobs": len(values),
        "p50_ms": round(1000 * percentile(values, 50), 2),
        "p99_ms": round(1000 * percentile(values, 99), 2),
        "max_ms": round(1000 * max(values), 2),
        "not_run": censored,
    }


def lateness_between(
    work: Workload, ran_at: dict[int, list[float]], since: float, until: float, now: float
) -> dict[str, Any]:
    """Lateness of the jobs due in [since, until); one not run by ``now`` counts ``now - due``."""
    values: list[float] = []
    censored = 0
    for i in range(max(0, work.index(since)), min(work.jobs, work.index(until) + 1)):
        due = work.due(i)
        if not since <= due < until:
            continue
        runs = ran_at.get(i)
        if runs:
            values.append(runs[0] - due)
        else:
            values.append(now - due)
            censored += 1
    return lateness(values, censored)


def _add_numbers(life: dict[str, Any], jobs: int) -> dict[str, Any]:
    return {
        "ms_per_job": {how: round(data["per_job_ms"], 3) for how, data in life["add"].items()},
        f"{jobs}_jobs_s": {
            how: round(data["per_job_ms"] * jobs / 1000, 1) for how, data in life["add"].items()
        },
    }


def _rss_numbers(life: dict[str, Any]) -> dict[str, float]:
    return {
        "start": life["rss_start_mb"],
        "filled": life["rss_filled_mb"],
        "jobs": round(life["rss_filled_mb"] - life["rss_start_mb"], 1),
    }


def measure(store: str, database: str, database_url: str, options: Options) -> dict[str, Any]:
    """One store's two lives, beside a memory store firing the same window at the same time."""
    result_dir = Path(tempfile.mkdtemp(prefix="huddle-bench-result-"))
    shape = {"meetings": options.meetings, "reminders": 10, "window_s": options.window}
    spec = LifeSpec("first", store, database_url, str(result_dir / "first.json"), shape)
    spec.sample = options.sample
    # The baseline runs the whole window (a memory store has nothing to restart from).
    twin = LifeSpec("first", "memory", database_url, str(result_dir / "twin.json"), shape)
    twin.sample, twin.crash_at = options.sample, 1.0 + LEAD_S / options.window
    timeout = 600 + 4 * options.window
    process, twin_process = first_lives([spec, twin])
    first = _collect(process, spec, timeout)
    work = Workload(**first["workload"])
    # The restart: a new process on the same store, as soon as the first one is gone.
    second_spec = LifeSpec(
        "second", store, database_url, str(result_dir / "second.json"), first["workload"]
    )
    second_spec.deadline = work.t_start + work.window_s + max(2.0, work.window_s / 20)
    second_process = _spawn(second_spec)
    baseline = _collect(twin_process, twin, timeout)
    second = _collect(second_process, second_spec, timeout)
    crash, planned_crash = first["crashed"], first["crash_planned"]
    ran_at = read_runs(spec.runs_path)
    twin_ran_at = read_runs(twin.runs_path)
    firing = lateness_between(work, ran_at, work.t_start, planned_crash, crash)
    twin_firing = lateness_between(work, twin_ran_at, work.t_start, planned_crash, crash)
    line: dict[str, Any] = {
        "bench": "scheduler",
        "database": database,
        "store": store,
        "jobs": work.jobs,
        "meetings": work.meetings,
        "window_s": work.window_s,
        "rate_per_s": round(work.jobs / work.window_s),
        "load_avg": float(Path("/proc/loadavg").read_text().split()[0]),
        "lateness": firing,
        "memory_lateness": twin_firing,
        "p99_vs_memory": _ratio(firing.get("p99_ms"), twin_firing.get("p99_ms")),
        "add": _add_numbers(first, work.jobs),
        "memory_add": _add_numbers(baseline, work.jobs),
        "rss_mb": _rss_numbers(first),
        "memory_rss_mb": _rss_numbers(baseline),
        "store_time_firing": first["store_time"],
        "gc_pauses_firing": first["gc"],
    }
    for life in (first, baseline):
        if "warning" in life:
            line.setdefault("warnings", []).append(f"{life['store']}: {life['warning']}")
    line["restart"] = _restart_numbers(
        work, crash, second_spec, second, ran_at, read_runs(second_spec.runs_path)
    )
    line["restart"]["run_twice"] += first["ran_again"]
    line["restart"]["memory_lateness_same_jobs"] = lateness_between(
        work,
        twin_ran_at,
        second.get("first_wakeup_done", second["ended"]),
        work.t_start + work.window_s,
        baseline["crashed"],
    )
    line["goal_met"] = _goal_met(firing)
    result_dir.rmdir()
    return line


def _goal_met(numbers: dict[str, Any]) -> bool:
    return bool(numbers.get("jobs")) and numbers["p99_ms"] < GOAL_P99_MS and not numbers["not_run"]


def _restart_numbers(
    work: Workload,
    crash: float,
    spec: LifeSpec,
    second: dict[str, Any],
    ran_at: dict[int, list[float]],
    second_ran_at: dict[int, list[float]],
) -> dict[str, Any]:
    """The second life's numbers; ``ran_at`` (job -> run times) gets its runs added."""
    spawned = spec.spawned
    ran_before = len(ran_at)
    runs = sorted((times[0], work.due(index)) for index, times in second_ran_at.items())
    late_last = spawned
    for index, times in second_ran_at.items():
        ran_at.setdefault(index, []).extend(times)
    for ran, due in runs:
        if ran - due >= ON_TIME_S:
            late_last = ran
    started, ended = second["started"], second["ended"]
    woke = second.get("first_wakeup_done", ended)
    end = work.t_start + work.window_s
    due_at_start = min(work.jobs, work.index(started) + 1)
    due_by_end = min(work.jobs, work.index(ended) + 1)
    left = second["left_in_store"]
    # Back on time when the last run was on time (and the life ended cleanly).
    recovered = second["clean"] and (not runs or runs[-1][0] - runs[-1][1] < ON_TIME_S)
    numbers: dict[str, Any] = {
        # False when the restarted process was still stuck in the store at the deadline.
        "ended_cleanly": second["clean"],
        "downtime_s": round(spawned - crash, 2),
        "overdue_at_restart": max(0, due_at_start - ran_before),
        "imported_s": round(second["imported"] - spawned, 3),
        "scheduler_started_s": round(started - spawned, 3),
        "first_wakeup_done_s": _since(second.get("first_wakeup_done"), spawned),
        "first_job_ran_s": round(runs[0][0] - spawned, 3) if runs else None,
        "on_time_again_s": round(late_last - spawned, 3) if recovered else None,
        "replan_done_s": _since(second.get("replanned"), spawned),
        "replan_checked": second.get("replan_checked"),
        "rss_mb": second["rss_started_mb"],
        # Jobs due before the restarted scheduler's first wake-up are its backlog; after it,
        # it should be on time again.
        "backlog": lateness_between(work, ran_at, crash, woke, ended),
        "lateness_after_backlog": lateness_between(work, ran_at, woke, end, ended),
        "run_twice": sum(len(times) - 1 for times in ran_at.values()) + second["ran_again"],
        "due_not_run_at_end": due_by_end - len(ran_at),
        "left_in_store_at_end": left,
        "store_time": second["store_time"],
        "gc_pauses": second["gc"],
    }
    if second["clean"]:
        # Due, never run, and no longer in the store: deleted by the first life just before the
        # crash, before they ran (APScheduler deletes a date job before running it).
        numbers["lost"] = max(0, due_by_end - len(ran_at) - (left - (work.jobs - due_by_end)))
    return numbers


def _since(moment: float | None, origin: float) -> float | None:
    return None if moment is None else round(moment - origin, 3)


# -- databases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """The run, from the command line."""

    databases: list[str]
    stores: list[str]
    meetings: int
    window: float
    sample: int
    postgres: str


class Database:
    """A fresh database per store: a temp dir for SQLite, a new database on PostgreSQL."""

    def __init__(self, kind: str, admin_url: str) -> None:
        self.kind = kind
        self.admin_url = admin_url
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._name = ""

    def __enter__(self) -> str:
        if self.kind == "sqlite":
            self._dir = tempfile.TemporaryDirectory(prefix="huddle-bench-")
            return f"sqlite+aiosqlite:///{self._dir.name}/huddle.db"
        self._name = f"huddle_bench_{uuid.uuid4().hex[:10]}"
        self._admin(f'CREATE DATABASE "{self._name}"')
        url = make_url(self.admin_url).set(drivername="postgresql+asyncpg", database=self._name)
        return url.render_as_string(hide_password=False)

    def __exit__(self, *exc: object) -> None:
        if self._dir is not None:
            self._dir.cleanup()
        if self._name:
            self._admin(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        url = make_url(self.admin_url).set(drivername="postgresql+psycopg")
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(statement))
        engine.dispose()


def summarize(database: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The goal, per store, for one database: p99 while firing and after the restart."""
    return {
        "bench": "scheduler",
        "summary": True,
        "database": database,
        "goal": f"p99 lateness < {GOAL_P99_MS:.0f} ms with everything persistent",
        "stores": {
            line["store"]: {
                "p99_ms": line["lateness"].get("p99_ms"),
                "p99_after_restart_ms": line["restart"]["lateness_after_backlog"].get("p99_ms"),
                "p99_vs_memory": line["p99_vs_memory"],
                "on_time_again_s": line["restart"]["on_time_again_s"],
                "goal_met": line["goal_met"],
            }
            for line in lines
        },
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 1)


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10x fewer jobs, same rate")
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--config",
        default="product,stock",
        help="stores beside the memory baseline, from: product, stock, engine (product,stock)",
    )
    parser.add_argument("--window", type=float, help="firing window in seconds (100; quick 10)")
    parser.add_argument("--meetings", type=int, help="meetings, 10 reminders each (10000)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "HUDDLE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="an admin URL: a database is created there for each store, then dropped",
    )
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    meetings = args.meetings or 10_000 // scale
    return Options(
        databases=["sqlite", "postgresql"] if args.database == "both" else [args.database],
        stores=[name for name in args.config.split(",") if name in STORES[1:]],
        meetings=meetings,
        window=args.window or 100.0 / scale,
        sample=100 if args.quick else 500,
        postgres=args.postgres,
    )


def main(argv: list[str] | None = None) -> int:
    """Run every store, print the JSON lines."""
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--child":
        child_main(sys.argv[2])
        return 0
    options = parse_options(argv)
    started = time.monotonic()
    for database in options.databases:
        lines = []
        for store in options.stores:
            _progress(f"{database} {store} ({time.monotonic() - started:.0f} s)")
            with Database(database, options.postgres) as url:
                line = measure(store, database, url, options)
            _emit(line)
            lines.append(line)
        _emit(summarize(database, lines))
    _progress(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
