"""Media on several cores: huddles spread over worker processes, behind one public HTTP port.

:class:`MediaWorkers` is what the bot and the adapters see instead of a
:class:`media.server.MediaServer` when `huddle serve` runs media in worker processes
(``HUDDLE_MEDIA_WORKERS``). It has the same facade. Each worker (``python -m media.worker``) runs a
MediaServer for the huddles that hash to it (:func:`worker_index`: a huddle lives on one worker),
and the main process:

- serves the join page and the web client's files itself, after the same checks as MediaServer;
- proxies each signaling WebSocket to the huddle's worker over 127.0.0.1 (signaling is a few
  small messages; RTP goes straight between the browser and the worker, whose ICE candidates
  the browser gets in the SDP);
- answers the workers' gate requests with the bot's gate, passes their events on to the listeners,
  and sums their stats (:mod:`media.control` is the channel: JSON lines over each worker's
  stdin/stdout);
- restarts a worker that dies: its participants lose their call (they see "Connection lost" and a
  Rejoin button), and a :class:`media.events.ParticipantLeft` is emitted for each of them so the
  attendance stays right.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web
from yarl import URL

from media import control
from media.control import ControlError, WorkerConfig
from media.events import HuddleGate, ParticipantJoined, ParticipantLeft
from media.network import MediaNetwork
from media.server import (
    CLOSE_TIMEOUT_SECONDS,
    HEARTBEAT_SECONDS,
    SEAT_COOKIE,
    MediaFront,
    MediaStats,
    signaling_refusal,
)
from media.signaling import HARD_FRAME_LIMIT
from media.turn import IceServers

log = logging.getLogger(__name__)

#: The directory that holds the ``media`` package: workers import the same code as main.
CODE_ROOT = Path(__file__).resolve().parent.parent

#: Environment variables a worker inherits (by prefix). Nothing else: platform tokens, database
#: URLs and secrets stay in main.
INHERITED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_",
    "TZ",
    "TMPDIR",
    "PYTHON",
    "VIRTUAL_ENV",
    "LD_LIBRARY_PATH",
    "SSL_CERT_",
)

#: Seconds a worker has to say ``ready`` after it was started.
START_TIMEOUT_SECONDS = 30.0
#: Seconds main waits for a worker's answer (``end``, fresh stats).
REQUEST_TIMEOUT_SECONDS = 10.0
#: Seconds a worker has to close cleanly at shutdown before it is killed.
STOP_TIMEOUT_SECONDS = 10.0
#: A worker that died is restarted after a delay that doubles while it keeps dying, from the
#: first to the second value; one that ran STABLE_SECONDS starts again from the first.
RESTART_DELAYS = (0.5, 10.0)
STABLE_SECONDS = 30.0
#: Seconds a joining socket waits for a restarting worker before it is told to try again.
READY_WAIT_SECONDS = 10.0

RESTARTING = "The huddle server is restarting. Try again in a minute."
#: Counters a dead worker's last snapshot keeps adding to the totals (the others are gauges).
GAUGES = {"huddles", "participants", "signaling_connections"}


def worker_index(huddle_id: str, workers: int) -> int:
    """The worker a huddle lives on: a hash that is the same in every process and every run."""
    digest = hashlib.blake2b(huddle_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % workers


def worker_env() -> dict[str, str]:
    """The worker's environment: the basics from ours, and the path to this very code."""
    env = {name: value for name, value in os.environ.items() if name.startswith(INHERITED_ENV)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CODE_ROOT), env.get("PYTHONPATH")]))
    return env


class WorkerStartError(RuntimeError):
    """A worker process exited or stayed silent instead of saying ``ready``."""


class WorkerProcess:
    """One worker process as main sees it: the process, its control channel, what it reported."""

    def __init__(
        self,
        config: WorkerConfig,
        on_message: Callable[[WorkerProcess, dict[str, Any]], None],
    ) -> None:
        self.config = config
        self.index = config.index
        self.port: int | None = None
        #: The last stats snapshot the worker sent.
        self.stats: MediaStats | None = None
        #: huddle id -> {participant id: name}, from its joined/left events, in joining order.
        self.present: dict[str, dict[str, str]] = {}
        self.ready = asyncio.Event()
        self.process: asyncio.subprocess.Process | None = None
        self._on_message = on_message
        self._requests = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any] | None]] = {}
        self._finished: asyncio.Task[int] | None = None

    @property
    def pid(self) -> int | None:
        """The process id (None before :meth:`start`)."""
        return None if self.process is None else self.process.pid

    async def start(self) -> None:
        """Start the process, hand it its config, and wait until it serves."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "media.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=worker_env(),
            limit=control.MAX_LINE_BYTES,
        )
        self.send(self.config.to_wire())
        self._finished = asyncio.ensure_future(self._run())
        ready = asyncio.ensure_future(self.ready.wait())
        await asyncio.wait(
            {ready, self._finished},
            timeout=START_TIMEOUT_SECONDS,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not self.ready.is_set():
            ready.cancel()
            self.kill()
            code = await self.exited()
            raise WorkerStartError(f"media worker {self.index} did not start (exit status {code})")

    def send(self, message: dict[str, Any]) -> None:
        """Queue one message to the worker (never blocks; lost if the worker is gone)."""
        stdin = self.process.stdin if self.process is not None else None
        if stdin is not None and not stdin.is_closing():
            stdin.write(control.encode(message))

    async def request(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Send ``message`` with a fresh ``id``; the reply, or None (timeout, worker gone)."""
        request_id = next(self._requests)
        reply: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = reply
        self.send({**message, "id": request_id})
        try:
            return await asyncio.wait_for(reply, REQUEST_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("media_worker_slow worker=%d request=%s", self.index, message["type"])
            return None
        finally:
            self._pending.pop(request_id, None)

    async def exited(self) -> int:
        """Wait until the worker's output ended and the process exited; its exit status."""
        assert self._finished is not None
        return await asyncio.shield(self._finished)

    def kill(self) -> None:
        """SIGKILL (shutdown of a worker that does not close, a worker that never started)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def stop(self) -> None:
        """Ask the worker to close (everyone gets ``ended``); kill it if it takes too long."""
        self.send({"type": "close"})
        try:
            await asyncio.wait_for(self.exited(), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("media_worker_killed worker=%d pid=%s why=timeout", self.index, self.pid)
            self.kill()
            await self.exited()

    async def _run(self) -> int:
        assert self.process is not None and self.process.stdout is not None
        output = self.process.stdout
        while True:
            try:
                line = await output.readline()
            except ValueError:  # longer than MAX_LINE_BYTES; readline dropped it
                log.warning("media_worker_bad_message worker=%d reason=too long", self.index)
                continue
            if not line:
                break
            try:
                self._handle(control.decode(line))
            except ControlError as exc:
                log.warning("media_worker_bad_message worker=%d reason=%s", self.index, exc)
            except Exception:
                # A bug on main's side of one message: logged, and the channel carries on.
                log.exception("media_worker_message_failed worker=%d", self.index)
        for reply in self._pending.values():
            if not reply.done():
                reply.set_result(None)
        if self.process.stdin is not None:
            self.process.stdin.close()
        return await self.process.wait()

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "ready":
            self.port = control.field(message, "port", int)
            self.ready.set()
            return
        if kind in ("done", "stats") and "id" in message:
            reply = self._pending.get(control.field(message, "id", int))
            if reply is not None and not reply.done():
                reply.set_result(message)
        if kind != "done":
            self._on_message(self, message)


class MediaWorkers(MediaFront):
    """Join pages and signaling in this process, rooms and forwarding in ``workers`` processes."""

    def __init__(
        self,
        *,
        secret: bytes,
        public_url: str,
        gate: HuddleGate,
        workers: int,
        max_participants: int = 100,
        ice_servers: list[str] | None = None,
        pin_cores: bool = False,
        stats_interval: float = 1.0,
        clock: Callable[[], datetime] | None = None,
        turn: IceServers | None = None,
        network: MediaNetwork | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"need at least one media worker, got {workers}")
        super().__init__(
            secret=secret,
            public_url=public_url,
            gate=gate,
            ice_servers=ice_servers,
            clock=clock,
            turn=turn,
            network=network,
        )
        self._count = workers
        self._max_participants = max_participants
        #: Worker i on core i: measured no better than leaving it to the scheduler (bench/workers.py
        #: settings 2 and 2p), so off unless asked for.
        self._pin_cores = pin_cores
        self._stats_interval = stats_interval
        self._workers: list[WorkerProcess | None] = [None] * workers
        #: Highest participant number each worker slot handed out (restarts continue above it).
        self._ids_issued = [index + 1 - workers for index in range(workers)]
        #: Counters of workers that died, so that totals never go backwards.
        self._retired = dict.fromkeys((f.name for f in fields(MediaStats)), 0)
        self._supervisors: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._sockets: set[web.WebSocketResponse] = set()
        self._http: aiohttp.ClientSession | None = None

    # -- the bot's side (the same as MediaServer's) ------------------------------------------

    async def start(self) -> None:
        """Start every worker and wait until they all serve (raise if one cannot start)."""
        # One connection per relayed socket, as many as there are people (aiohttp's default caps
        # a session at 100), and no total timeout: a relayed socket lasts as long as the call.
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=READY_WAIT_SECONDS),
        )
        started = await asyncio.gather(
            *(self._spawn(index) for index in range(self._count)), return_exceptions=True
        )
        failed = [outcome for outcome in started if isinstance(outcome, BaseException)]
        if failed:
            await self.close()
            raise failed[0]
        self._supervisors = [
            asyncio.ensure_future(self._supervise(index)) for index in range(self._count)
        ]

    async def end_huddle(self, huddle_id: str, reason: str) -> None:
        """End the huddle on its worker (``ended`` to everyone there); refuse new joins."""
        self._ended[huddle_id] = reason
        worker = self.worker_for(huddle_id)
        if worker is not None:
            await worker.request({"type": "end", "huddle": huddle_id, "reason": reason})

    async def set_room(self, huddle_id: str, *, locked: bool, lobby: bool, by: str) -> None:
        """Change the huddle's settings here (join pages) and on its worker (the call)."""
        await super().set_room(huddle_id, locked=locked, lobby=lobby, by=by)
        worker = self.worker_for(huddle_id)
        if worker is not None:
            await worker.request(
                {"type": "room", "huddle": huddle_id, "locked": locked, "lobby": lobby, "by": by}
            )

    def stats(self) -> MediaStats:
        """The workers' counters summed (as of their last snapshot), and who is connected now."""
        totals = dict(self._retired)
        for worker in self._live():
            if worker.stats is not None:
                for name, value in vars(worker.stats).items():
                    totals[name] += value
        rooms = [room for worker in self._live() for room in worker.present.values() if room]
        totals["huddles"] = len(rooms)
        totals["participants"] = sum(len(room) for room in rooms)
        return MediaStats(**totals)

    async def collect_stats(self) -> MediaStats:
        """:meth:`stats` after asking every worker for a fresh snapshot (benchmarks)."""
        await asyncio.gather(*(worker.request({"type": "stats?"}) for worker in self._live()))
        return self.stats()

    def participants(self, huddle_id: str) -> list[tuple[str, str]]:
        """``(participant id, name)`` of everyone in the huddle now, in joining order."""
        for worker in self._live():
            if huddle_id in worker.present:
                return list(worker.present[huddle_id].items())
        return []

    def worker_pids(self) -> list[int | None]:
        """Each worker's process id (None while one restarts)."""
        return [None if worker is None else worker.pid for worker in self._workers]

    def worker_for(self, huddle_id: str) -> WorkerProcess | None:
        """The worker process that hosts ``huddle_id`` now (None while it restarts)."""
        return self._workers[worker_index(huddle_id, self._count)]

    async def close(self) -> None:
        """Shut down: every worker closes (``ended`` to everyone) and exits, or is killed."""
        self._closing = True
        for supervisor in self._supervisors:
            supervisor.cancel()
        live = self._live()
        await asyncio.gather(*(worker.stop() for worker in live))
        for worker in live:
            self._forget(worker)
        if self._sockets:
            await asyncio.gather(
                *(ws.close() for ws in list(self._sockets)), return_exceptions=True
            )
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        await self._subscribers.close()

    # -- HTTP -------------------------------------------------------------------------------

    async def _signaling(self, request: web.Request) -> web.StreamResponse:
        limited = self._join_limited(request)
        if limited is not None:
            return limited
        admission = await self._admit(request)
        if isinstance(admission, str):
            return signaling_refusal(admission, request)
        access = admission.access
        worker = await self._ready_worker(access.huddle_id)
        if worker is None or worker.port is None or self._http is None:
            return signaling_refusal(RESTARTING, request, status=503)
        # The worker checks the token and asks the gate again: it trusts nobody on 127.0.0.1.
        target = URL.build(
            scheme="http",
            host="127.0.0.1",
            port=worker.port,
            path=request.rel_url.raw_path,
            query_string=request.rel_url.raw_query_string,
            encoded=True,
        )
        try:
            # The seat cookie goes along: the worker's room bars removed seats itself.
            headers = {control.PEER_HEADER: request.remote or "?"}
            if admission.seat and not admission.new_seat:
                headers["Cookie"] = f"{SEAT_COOKIE}={admission.seat}"
            upstream = await self._http.ws_connect(target, max_msg_size=0, headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            refused = exc.status == 403
            reason = "The huddle refused the connection." if refused else RESTARTING
            return signaling_refusal(reason, request, status=403 if refused else 503)
        except (aiohttp.ClientError, OSError):
            return signaling_refusal(RESTARTING, request, status=503)
        ws = web.WebSocketResponse(
            max_msg_size=HARD_FRAME_LIMIT,
            heartbeat=HEARTBEAT_SECONDS,
            timeout=CLOSE_TIMEOUT_SECONDS,
        )
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError):
            await upstream.close()
            raise
        self._sockets.add(ws)
        try:
            await _relay(ws, upstream)
        finally:
            self._sockets.discard(ws)
        return ws

    async def _ready_worker(self, huddle_id: str) -> WorkerProcess | None:
        """The huddle's worker once it serves (waiting out a restart, within reason)."""
        index = worker_index(huddle_id, self._count)
        deadline = time.monotonic() + READY_WAIT_SECONDS
        while not self._closing:
            worker = self._workers[index]
            if worker is not None and worker.ready.is_set():
                return worker
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        return None

    # -- workers ----------------------------------------------------------------------------

    def _live(self) -> list[WorkerProcess]:
        return [worker for worker in self._workers if worker is not None]

    async def _spawn(self, index: int) -> WorkerProcess:
        cores = sorted(os.sched_getaffinity(0))
        pin = self._pin_cores and self._count > 1
        config = WorkerConfig(
            index=index,
            secret=self._secret,
            public_url=self._public_url,
            max_participants=self._max_participants,
            ice_servers=self._ice_servers,
            first_participant_id=self._ids_issued[index] + self._count,
            participant_id_step=self._count,
            core=cores[index % len(cores)] if pin else None,
            log_level=logging.getLogger().getEffectiveLevel(),
            stats_interval=self._stats_interval,
            clock_offset=(self._clock() - datetime.now(UTC)).total_seconds(),
            public_ips=list(self._network.public_ips),
            udp_ports=(
                [self._network.udp_ports.first, self._network.udp_ports.last]
                if self._network.udp_ports
                else None
            ),
        )
        worker = WorkerProcess(config, self._on_message)
        await worker.start()
        self._workers[index] = worker
        log.info(
            "media_worker_started worker=%d pid=%s port=%s core=%s",
            index,
            worker.pid,
            worker.port,
            config.core,
        )
        return worker

    async def _supervise(self, index: int) -> None:
        """Restart the worker of slot ``index`` whenever it dies, until shutdown."""
        delay = RESTART_DELAYS[0]
        while not self._closing:
            worker = self._workers[index]
            started = time.monotonic()
            if worker is not None:
                code = await worker.exited()
                if self._closing:
                    return
                if time.monotonic() - started > STABLE_SECONDS:
                    delay = RESTART_DELAYS[0]
                log.warning(
                    "media_worker_died worker=%d pid=%s returncode=%s participants=%d "
                    "restarting_in=%.1fs",
                    index,
                    worker.pid,
                    code,
                    sum(len(room) for room in worker.present.values()),
                    delay,
                )
                self._workers[index] = None
                self._forget(worker)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_DELAYS[1])
            if self._closing:
                return
            try:
                await self._spawn(index)
            except (WorkerStartError, OSError) as exc:
                log.error("media_worker_restart_failed worker=%d error=%s", index, exc)

    def _forget(self, worker: WorkerProcess) -> None:
        """A worker is gone: its participants left, its counters stay in the totals."""
        if worker.stats is not None:
            for name, value in vars(worker.stats).items():
                if name not in GAUGES:
                    self._retired[name] += value
            worker.stats = None
        now = self._clock()
        for huddle_id, room in worker.present.items():
            for participant_id, name in room.items():
                self._subscribers.emit(ParticipantLeft(huddle_id, participant_id, name, now))
        worker.present.clear()

    # -- the control channel ------------------------------------------------------------------

    def _on_message(self, worker: WorkerProcess, message: dict[str, Any]) -> None:
        kind = message["type"]
        if "ids_issued" in message:
            issued = control.field(message, "ids_issued", int)
            self._ids_issued[worker.index] = max(self._ids_issued[worker.index], issued)
        if kind == "gate":
            request_id = control.field(message, "id", int)
            huddle_id = control.field(message, "huddle", str)
            task = asyncio.ensure_future(self._answer_gate(worker, request_id, huddle_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "event":
            event = control.event_from_wire(message.get("event"))
            if isinstance(event, ParticipantLeft):
                room = worker.present.get(event.huddle_id, {})
                room.pop(event.participant_id, None)
                if not room:
                    worker.present.pop(event.huddle_id, None)
            elif isinstance(event, ParticipantJoined):
                room = worker.present.setdefault(event.huddle_id, {})
                room[event.participant_id] = event.name
            self._subscribers.emit(event)
        elif kind == "stats":
            worker.stats = control.stats_from_wire(message.get("stats"))
        elif kind == "log":
            _relog(worker.index, message)
        elif kind != "closed":
            raise ControlError(f"unknown message {kind!r}")

    async def _answer_gate(self, worker: WorkerProcess, request_id: int, huddle_id: str) -> None:
        reply: dict[str, Any] = {"type": "gate-answer", "id": request_id}
        try:
            reply["access"] = control.access_to_wire(await self._gate(huddle_id))
        except Exception as exc:
            log.exception("gate_failed huddle=%s worker=%d", huddle_id, worker.index)
            reply["error"] = type(exc).__name__
        worker.send(reply)


def _relog(index: int, message: dict[str, Any]) -> None:
    """A worker's log record, logged here (one log stream, main's format) with its worker."""
    level = control.field(message, "level", int)
    name = control.field(message, "logger", str)
    text = control.field(message, "msg", str)
    logger = logging.getLogger(name)
    if logger.isEnabledFor(level):
        first, newline, rest = text.partition("\n")
        record = logger.makeRecord(
            name, level, "media.worker", 0, f"{first} worker={index}{newline}{rest}", (), None
        )
        logger.handle(record)


async def _relay(browser: web.WebSocketResponse, worker: aiohttp.ClientWebSocketResponse) -> None:
    """Copy frames both ways until either side closes, then close the other."""

    async def pump(
        source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    ) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            async for frame in source:
                if frame.type == WSMsgType.TEXT:
                    await sink.send_str(frame.data)
                elif frame.type == WSMsgType.BINARY:
                    await sink.send_bytes(frame.data)
                else:
                    break

    up = asyncio.ensure_future(pump(browser, worker))
    down = asyncio.ensure_future(pump(worker, browser))
    try:
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # The close code tells the worker whether the person left (1000, 1001) or dropped and
        # may resume (anything else; 1005 and 1006 cannot be sent, so 4000 stands for them).
        code = browser.close_code
        await worker.close(code=code if code in (1000, 1001, 4000) else 4000)
        await browser.close()
        for task in (up, down):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
