"""One media worker process: a :class:`media.server.MediaServer` for the huddles hashed to it.

``python -m media.worker`` is started by :class:`media.workers.MediaWorkers`, never by hand. It
reads its :class:`media.control.WorkerConfig` from the first line of stdin, serves signaling on an
ephemeral port of 127.0.0.1 (the main process proxies browsers' sockets to it; media goes straight
between the browser and this process), and speaks :mod:`media.control` over stdin/stdout: it asks
main's gate before admitting anyone, reports events, stats and its log records, and obeys ``end``
and ``close``. It exits when told to close, on SIGTERM, or when stdin closes (main is gone: no
orphan keeps running).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import itertools
import json
import logging
import os
import signal
import sys
import threading
import traceback
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from media import control
from media.control import ControlError, WorkerConfig
from media.events import HuddleAccess, MediaEvent
from media.server import MediaServer

log = logging.getLogger("media.worker")

#: Seconds to wait for main's answer to a gate request before refusing the join.
GATE_TIMEOUT_SECONDS = 10.0


class IssuedIds:
    """first, first + step, ...: participant numbers, remembering the last one handed out."""

    def __init__(self, first: int, step: int) -> None:
        self._numbers = itertools.count(first, step)
        self.last = first - step

    def __iter__(self) -> IssuedIds:
        return self

    def __next__(self) -> int:
        self.last = next(self._numbers)
        return self.last


class Output(asyncio.Protocol):
    """The write end of stdout as an asyncio pipe: writes never block the event loop."""

    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self.transport = transport


class ControlLogHandler(logging.Handler):
    """Sends log records to main, which logs them in its own format (one log stream)."""

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self._worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            self._worker.send_threadsafe(
                {"type": "log", "level": record.levelno, "logger": record.name, "msg": message}
            )
        except Exception:
            self.handleError(record)


def _shifted_now(offset: timedelta) -> datetime:
    return datetime.now(UTC) + offset


class Worker:
    """The control channel's worker end, around one MediaServer."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._output = Output()
        self._ids = IssuedIds(config.first_participant_id, config.participant_id_step)
        self._requests = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.server = MediaServer(
            secret=config.secret,
            public_url=config.public_url,
            gate=self.gate,
            max_participants=config.max_participants,
            ice_servers=config.ice_servers,
            participant_ids=self._ids,
            network=config.network(),
            clock=functools.partial(_shifted_now, timedelta(seconds=config.clock_offset)),
        )
        self.server.subscribe(self._on_event)

    async def open_output(self, pipe: Any) -> None:
        """Write control messages to ``pipe`` (stdout as it was when the process started)."""
        await self.loop.connect_write_pipe(lambda: self._output, pipe)

    def send(self, message: dict[str, Any]) -> None:
        """Queue one message to main (from the event loop's thread)."""
        if self._output.transport is not None and not self._output.transport.is_closing():
            self._output.transport.write(control.encode(message))

    def send_threadsafe(self, message: dict[str, Any]) -> None:
        """:meth:`send` from any thread (log records come from executor threads too)."""
        if threading.get_ident() == self._thread:
            self.send(message)
        else:
            self.loop.call_soon_threadsafe(self.send, message)

    # -- what the MediaServer asks ------------------------------------------------------------

    async def gate(self, huddle_id: str) -> HuddleAccess | None:
        """Ask main's gate (the bot decides who may join)."""
        request_id = next(self._requests)
        answer: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self._pending[request_id] = answer
        self.send({"type": "gate", "id": request_id, "huddle": huddle_id})
        try:
            reply = await asyncio.wait_for(answer, GATE_TIMEOUT_SECONDS)
        finally:
            self._pending.pop(request_id, None)
        if "error" in reply:
            raise RuntimeError(f"main's gate failed: {reply['error']}")
        return control.access_from_wire(reply.get("access"))

    async def _on_event(self, event: MediaEvent) -> None:
        self.send(
            {
                "type": "event",
                "event": control.event_to_wire(event),
                "ids_issued": self._ids.last,
            }
        )
        self.send_stats()

    def send_stats(self, request_id: int | None = None) -> None:
        """The MediaServer's counters now (with the request's id when main asked for them)."""
        message: dict[str, Any] = {
            "type": "stats",
            "stats": control.stats_to_wire(self.server.stats()),
            "ids_issued": self._ids.last,
        }
        if request_id is not None:
            message["id"] = request_id
        self.send(message)

    # -- commands from main -------------------------------------------------------------------

    async def obey(self, reader: asyncio.StreamReader, stop: asyncio.Event) -> None:
        """Read commands until ``close``, stdin's end or ``stop`` (SIGTERM)."""
        reading = asyncio.ensure_future(self._read_commands(reader))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (reading, stopping):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _read_commands(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # longer than MAX_LINE_BYTES: the rest of that line is dropped
                log.warning("control_message_dropped reason=too long")
                continue
            if not line:
                return  # main is gone
            try:
                message = control.decode(line)
                if message["type"] == "close":
                    return
                self._command(message)
            except ControlError as exc:
                log.warning("control_message_dropped reason=%s", exc)
            except Exception:
                log.exception("control_message_failed")

    def _command(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "gate-answer":
            answer = self._pending.get(control.field(message, "id", int))
            if answer is not None and not answer.done():
                answer.set_result(message)
        elif kind == "end":
            request_id = control.field(message, "id", int)
            huddle_id = control.field(message, "huddle", str)
            reason = control.field(message, "reason", str)
            self._spawn(self._end(request_id, huddle_id, reason))
        elif kind == "room":
            request_id = control.field(message, "id", int)
            huddle_id = control.field(message, "huddle", str)
            locked = control.field(message, "locked", bool)
            lobby = control.field(message, "lobby", bool)
            by = control.field(message, "by", str)
            self._spawn(self._set_room(request_id, huddle_id, locked, lobby, by))
        elif kind == "stats?":
            self.send_stats(control.field(message, "id", int))
        else:
            raise ControlError(f"unknown command {kind!r}")

    async def _end(self, request_id: int, huddle_id: str, reason: str) -> None:
        try:
            await self.server.end_huddle(huddle_id, reason)
        finally:
            self.send({"type": "done", "id": request_id})

    async def _set_room(
        self, request_id: int, huddle_id: str, locked: bool, lobby: bool, by: str
    ) -> None:
        try:
            await self.server.set_room(huddle_id, locked=locked, lobby=lobby, by=by)
        finally:
            self.send({"type": "done", "id": request_id})

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def report_stats(self) -> None:
        """Send a stats snapshot every ``stats_interval`` seconds (main's /metrics reads them)."""
        while True:
            await asyncio.sleep(self.config.stats_interval)
            self.send_stats()

    async def close(self) -> None:
        """Close the MediaServer (``ended`` to everyone, their left events to main), say closed."""
        await self.server.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.send_stats()
        self.send({"type": "closed"})
        transport = self._output.transport
        if transport is not None:
            # Let the last messages out before the process ends.
            transport.close()
            for _ in range(100):
                if transport.get_write_buffer_size() == 0:
                    break
                await asyncio.sleep(0.01)


async def serve(config: WorkerConfig, stdin: Any, stdout: Any) -> None:
    """Run the worker until main says ``close``, SIGTERM, or main goes away."""
    worker = Worker(config)
    await worker.open_output(stdout)
    handler = ControlLogHandler(worker)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level)
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(max(config.log_level, logging.WARNING))

    reader = asyncio.StreamReader(limit=control.MAX_LINE_BYTES)
    await worker.loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    stop = asyncio.Event()
    worker.loop.add_signal_handler(signal.SIGTERM, stop.set)  # a clean close, like `close`

    app = web.Application(middlewares=[_peer_from_main])
    worker.server.add_routes(app)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    # Main adds "worker=N" to every record it relays.
    log.info("media_worker_ready pid=%d port=%d", os.getpid(), port)
    worker.send({"type": "ready", "port": port, "pid": os.getpid()})
    reporting = asyncio.ensure_future(worker.report_stats())
    # As `huddle serve` does after start-up: what start-up built lives as long as the process,
    # so the cyclic collector's full passes need not walk it (they stop the loop, and media).
    gc.collect()
    gc.freeze()
    try:
        await worker.obey(reader, stop)
    finally:
        reporting.cancel()
        await worker.close()
        await runner.cleanup()


@web.middleware
async def _peer_from_main(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Main relays every socket from 127.0.0.1 and names the browser in a header (logs only).
    peer = request.headers.get(control.PEER_HEADER)
    return await handler(request.clone(remote=peer) if peer else request)


def _read_config_line() -> bytes:
    # Byte by byte from the descriptor: a buffered reader could swallow the next command too.
    line = bytearray()
    while not line.endswith(b"\n") and len(line) < control.MAX_LINE_BYTES:
        chunk = os.read(0, 1)
        if not chunk:
            break
        line += chunk
    return bytes(line)


def main() -> None:
    """Entry point: read the config line, pin to the core if asked, serve."""
    # Ctrl-C in a terminal reaches the whole process group: main closes its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The control channel keeps the original stdout; anything else printing there (a library, a
    # stray print) lands on stderr instead of in the middle of a control message.
    stdout = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        config = WorkerConfig.from_wire(json.loads(_read_config_line()))
    except (ValueError, ControlError) as exc:
        print(f"media worker: bad config on stdin: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    if config.core is not None:
        # First thing: threads started later (aiortc's executor) inherit the pinning.
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {config.core})
    asyncio.run(serve(config, os.fdopen(0, "rb", buffering=0), stdout))


if __name__ == "__main__":
    main()
