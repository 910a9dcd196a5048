"""Media workers benchmark: forwarding capacity of 1 worker process against 2 (media on cores).

K huddles, each with one publisher (640x480 VP8 at --bitrate, encoded once by the driver and
replayed, so that publishing costs the clients next to nothing; video only) and N subscribers that
count RTP where it enters their process (bench/participants.py's ``Subscriber``: no decryption, no
decoding). The server is ``media.workers.MediaWorkers`` with W worker processes behind one port,
the huddle ids chosen so that the K huddles spread evenly over the workers; the clients run in
``--client-processes`` processes of their own, unpinned, like the main process. Settings take turns
at each load (1, 2, then 2, 1 in the next round), so drift on a shared machine hits both alike.
For each (setting, load) one JSON line:

- ``fwd_packets_per_s``: packets the workers sent to subscribers (their own counts), and
  ``fwd_share``: that over what the publishers sent times the audience (1.0: keeping up);
- ``worker_cpu_pct`` (each worker, % of one core), ``main_cpu_pct`` (the signaling relay and the
  rest), ``us_per_fwd_packet`` (every server process's CPU per forwarded packet);
- ``fps_min`` / ``fps_median``: complete video frames per second at the subscribers, and
  ``holds_30fps`` (every subscriber at 29 or more);
- ``client_cpu_pct`` and ``others_cpu_pct`` (anything else on the machine): on a 2-core machine
  the clients compete with the workers for the same two cores.

Then, for each setting against the first: the CPU per packet at each load, and the capacity, both
as measured (the most packets/s that still held 30 fps) and projected (packets/s over the busiest
worker's share of its core: where that worker would fill its core, if cost stays linear).

    python -m bench.workers                                   # 1 against 2 workers, three loads
    python -m bench.workers --loads 4x40 --rounds 2 --duration 8
    python -m bench.workers --settings 2,2p --loads 4x60      # workers pinned to cores or not
    python -m bench.workers --settings 0,1 --loads 4x20       # the relay's cost over in-process
    python -m bench.workers --worker-cpu 35 --loads 4x20,4x30,4x40,4x50,4x60  # a budget each

With ``--worker-cpu P`` each worker runs under a CFS quota of P% of one core (a cgroup of its
own): a stand-in for one core per worker on a 2-core machine whose cores the clients also need.
A budgeted worker saturates at a load the machine can still generate, so the capacity of 1 and
2 workers is measured rather than projected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from aiohttp import web
from aiortc import VideoStreamTrack

from bench.participants import Subscriber, core_busy_seconds, cpu_seconds
from bench.serve import start_app
from bench.sfu import JsonLines, log_tail, stop_process
from bench.synthetic import HEIGHT, LOOP_FRAMES, WIDTH, _video_loop
from media.contrib.client import HuddleClient
from media.events import HuddleAccess
from media.workers import worker_index

ROOT = Path(__file__).resolve().parent.parent
#: Complete frames per second a subscriber must get for a run to "hold 30 fps".
FPS_HELD = 29.0


# -- the publisher: VP8 encoded once, replayed in real time ---------------------------------------


def encode_loop(bitrate: int) -> list[bytes]:
    """bench.synthetic's moving texture, VP8 at ``bitrate``, a keyframe every second."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, 30)
    codec.framerate = fractions.Fraction(30, 1)
    codec.gop_size = 30
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    encoded: list[bytes] = []
    for index, planes in enumerate(_video_loop()):
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for plane, data in zip(frame.planes, planes, strict=True):
            plane.update(data)
        frame.pts = index
        encoded.extend(bytes(packet) for packet in codec.encode(frame))
    encoded.extend(bytes(packet) for packet in codec.encode(None))
    assert len(encoded) == LOOP_FRAMES, len(encoded)
    return encoded


def save_frames(frames: list[bytes], path: Path) -> None:
    """Frames to a file, each after its 4-byte length (the driver encodes once per run)."""
    path.write_bytes(b"".join(len(frame).to_bytes(4, "big") + frame for frame in frames))


def load_frames(path: Path) -> list[bytes]:
    """What :func:`save_frames` wrote."""
    data, frames, at = path.read_bytes(), [], 0
    while at < len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        frames.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    return frames


class ReplayedCamera(VideoStreamTrack):
    """Pre-encoded VP8 frames at 30 fps: aiortc packetizes them without encoding."""

    def __init__(self, frames: list[bytes]) -> None:
        super().__init__()
        self._frames = frames
        self._count = 0

    async def recv(self) -> Any:  # an av.Packet, which aiortc sends as it is
        pts, time_base = await self.next_timestamp()
        packet = av.Packet(self._frames[self._count % len(self._frames)])
        packet.pts = pts
        packet.time_base = time_base
        self._count += 1
        return packet


# -- the clients process ------------------------------------------------------------------------


async def run_clients(join_urls: list[str], subscribers: int, frames_path: Path) -> None:
    """Fill the huddles, say ``receiving``, then measure between ``start`` and ``stop`` on stdin."""
    started = time.monotonic()
    frames = load_frames(frames_path)
    audience: list[Subscriber] = []
    publishers: list[HuddleClient] = []
    gate = asyncio.Semaphore(8)

    joined = 0

    async def join(client: HuddleClient) -> None:
        nonlocal joined
        async with gate:
            await client.join(within=60.0)
        if isinstance(client, Subscriber):
            # Counting from the first packet on: until tapped, RTP takes aiortc's whole receive
            # path (SRTP, jitter buffer), which would swamp this process while the rest join.
            await client.wait_for(client.tap, within=60.0)
        joined += 1
        if joined % 20 == 0:
            _progress(f"{joined} joined after {time.monotonic() - started:.1f} s")

    for url in join_urls:
        publisher = HuddleClient(
            url, "publisher", publish_audio=False, publish_video=False, decode=False
        )
        publisher.pc.addTransceiver(ReplayedCamera(frames), direction="sendonly")
        await publisher.join(within=60.0)
        publishers.append(publisher)
        audience.extend(Subscriber(url, f"sub-{i}", decode=False) for i in range(subscribers))
    await asyncio.gather(*(join(s) for s in audience))
    _progress(f"{len(audience)} subscribers joined after {time.monotonic() - started:.1f} s")

    def all_receiving() -> bool:
        tapped = [s.tap() for s in audience]
        return all(tapped) and all(s.wire.complete_frames >= 30 for s in audience)

    with contextlib.suppress(TimeoutError):
        await audience[0].wait_for(all_receiving, within=30.0 + 0.2 * len(audience))
    _progress(f"receiving after {time.monotonic() - started:.1f} s")
    _say({"event": "receiving", "setup_s": round(time.monotonic() - started, 1)})

    commands = stdin_commands()

    def counters() -> tuple[float, float, list[int], list[int], int]:
        times = os.times()
        return (
            time.monotonic(),
            times.user + times.system,
            [s.wire.complete_frames for s in audience],
            [s.wire.video_packets for s in audience],
            sum(s.wire.lost for s in audience),
        )

    while await commands.get() != "start":
        pass
    first = counters()
    while await commands.get() != "stop":
        pass
    last = counters()
    window = last[0] - first[0]
    fps = [(b - a) / window for a, b in zip(first[2], last[2], strict=True)]
    _say(
        {
            "event": "measured",
            "window_s": round(window, 2),
            "client_cpu_s": round(last[1] - first[1], 3),
            "fps": fps,
            "received_packets": sum(last[3]) - sum(first[3]),
            "lost_packets": last[4] - first[4],
        }
    )
    # Tearing down hundreds of peer connections would only add time to the run.
    os._exit(0)


def stdin_commands() -> asyncio.Queue[str]:
    """The lines the driver writes to this process's stdin (``start``, ``stop``), as they come."""
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()
    threading.Thread(
        target=lambda: [
            loop.call_soon_threadsafe(commands.put_nowait, line.strip()) for line in sys.stdin
        ],
        daemon=True,
    ).start()
    return commands


def _say(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def _progress(message: str) -> None:
    print(f"[workers] {message}", file=sys.stderr, flush=True)


# -- the server process -------------------------------------------------------------------------


async def _open_gate(huddle_id: str) -> HuddleAccess:
    return HuddleAccess(huddle_id=huddle_id, title="benchmark", open=True)


async def run_server(workers: int, huddle_ids: list[str], pin: bool) -> None:
    """MediaWorkers (or, with 0 workers, a MediaServer) on an ephemeral port until SIGTERM."""
    from media.server import MediaServer, MediaStats
    from media.workers import MediaWorkers

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    secret = os.urandom(32)
    media: MediaServer | MediaWorkers
    if workers:
        media = MediaWorkers(
            secret=secret,
            public_url=public_url,
            gate=_open_gate,
            workers=workers,
            max_participants=1000,
            pin_cores=pin,
        )
    else:
        media = MediaServer(
            secret=secret, public_url=public_url, gate=_open_gate, max_participants=1000
        )
    await media.start()

    async def stats(_request: web.Request) -> web.Response:
        snapshot: MediaStats
        if isinstance(media, MediaWorkers):
            snapshot = await media.collect_stats()
            pids = [pid for pid in media.worker_pids() if pid is not None]
        else:
            snapshot = media.stats()
            pids = []
        return web.json_response(
            {
                "packets_forwarded": snapshot.packets_forwarded,
                "packets_received": snapshot.packets_received,
                "participants": snapshot.participants,
                "main_pid": os.getpid(),
                "worker_pids": pids,
            }
        )

    app = web.Application()
    media.add_routes(app)
    app.router.add_get("/bench/stats", stats)
    runner, stop = await start_app(app, sock)
    expires = time.time() + 3600
    _say(
        {
            "join_urls": [media.join_url(huddle_id, expires) for huddle_id in huddle_ids],
            "stats_url": f"{public_url}/bench/stats",
        }
    )
    await stop.wait()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(media.close(), timeout=15.0)
    await runner.cleanup()


# -- the driver ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """K huddles of one publisher and N subscribers."""

    huddles: int
    subscribers: int

    @classmethod
    def parse(cls, text: str) -> Load:
        huddles, subscribers = text.lower().split("x")
        return cls(int(huddles), int(subscribers))

    def __str__(self) -> str:
        return f"{self.huddles}x{self.subscribers}"


@dataclass(frozen=True)
class Setting:
    """How the server runs media: ``2`` (two workers, as `huddle serve` runs them), ``2p`` (two
    workers pinned to cores 0 and 1), ``0`` (no workers: media in the main process)."""

    workers: int
    pinned: bool

    @classmethod
    def parse(cls, text: str) -> Setting:
        text = text.strip().lower()
        return cls(int(text.removesuffix("p")), text.endswith("p"))

    def __str__(self) -> str:
        return f"{self.workers}{'p' if self.pinned else ''}"


@dataclass(frozen=True)
class Options:
    """Everything a run needs, from the command line."""

    settings: list[Setting]
    loads: list[Load]
    warmup: float
    duration: float
    rounds: int
    bitrate: int
    client_processes: int
    #: The publisher's video, encoded once (:func:`save_frames`).
    frames: Path
    #: Each worker's CPU budget in % of one core (a cgroup quota), or None: no limit.
    worker_cpu: float | None = None


def balanced_ids(count: int, workers: int = 2) -> list[str]:
    """``count`` huddle ids that take turns over ``workers`` workers (worker 0, 1, 0, 1, ...)."""
    pools: dict[int, list[str]] = {index: [] for index in range(workers)}
    for n in itertools.count():
        candidate = f"bench{n:03d}"
        pools[worker_index(candidate, workers)].append(candidate)
        if all(len(pool) * workers >= count for pool in pools.values()):
            break
    turns = itertools.chain.from_iterable(zip(*pools.values(), strict=False))
    return list(itertools.islice(turns, count))


#: Every core of the machine: the clients and workers run unpinned.
ALL_CORES = set(range(os.cpu_count() or 1))
#: cgroup v1's cpu controller, where --worker-cpu puts each worker in a group of its own.
CPU_CGROUP = Path("/sys/fs/cgroup/cpu")
#: CFS period for the quota: short, so that a throttled worker waits at most a few milliseconds.
CFS_PERIOD_US = 10_000


def limit_cpu(pids: list[int], percent: float) -> list[Path]:
    """Give each process its own CFS quota of ``percent`` of one core; the groups made.

    A stand-in for "one core per worker" on a machine whose cores the clients also need: with
    the budget well below a core, a worker saturates while the machine still has room for the
    load that saturates it.
    """
    groups = []
    for index, pid in enumerate(pids):
        group = CPU_CGROUP / f"huddle-bench-worker-{os.getpid()}-{index}"
        group.mkdir(exist_ok=True)
        (group / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(int(CFS_PERIOD_US * percent / 100)))
        (group / "cgroup.procs").write_text(str(pid))
        groups.append(group)
    return groups


def remove_groups(groups: list[Path]) -> None:
    """Remove the groups :func:`limit_cpu` made (their processes have exited)."""
    for group in groups:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)  # a process still exiting


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: dict[str, Any] = json.load(response)
        return body


def measure(setting: Setting, load: Load, options: Options, round_: int) -> dict[str, Any]:
    """Start the server and the clients for one (setting, load); the result line."""
    base: dict[str, Any] = {"bench": "workers", "setting": str(setting), "load": str(load)}
    base |= {"workers": setting.workers, "pinned": setting.pinned, "round": round_}
    python = sys.executable
    server_log = tempfile.TemporaryFile("w+")
    clients_log = tempfile.TemporaryFile("w+")
    ids = balanced_ids(load.huddles)
    server = subprocess.Popen(
        [python, "-m", "bench.workers", "serve", "--workers", str(setting.workers)]
        + ["--ids", ",".join(ids)]
        + (["--pin"] if setting.pinned else []),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=server_log,
        text=True,
    )
    clients: list[subprocess.Popen[str]] = []
    groups: list[Path] = []
    if options.worker_cpu is not None:
        base["worker_cpu_limit_pct"] = options.worker_cpu
    try:
        ready = JsonLines(server).next(timeout=60)
        if options.worker_cpu is not None:
            groups = limit_cpu(_stats(ready["stats_url"])["worker_pids"], options.worker_cpu)
        processes = min(options.client_processes, load.huddles)
        for index in range(processes):
            urls = ready["join_urls"][index::processes]
            clients.append(
                subprocess.Popen(
                    [python, "-m", "bench.workers", "clients", "--subscribers"]
                    + [str(load.subscribers), "--frames", str(options.frames)]
                    + [arg for url in urls for arg in ("--join-url", url)],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=clients_log,
                    text=True,
                )
            )
        lines = [JsonLines(client) for client in clients]
        budget = 120 + 1.0 * load.huddles * load.subscribers
        for reader in lines:
            reader.next(timeout=budget)
        time.sleep(options.warmup)

        def snapshot() -> tuple[float, dict[str, Any], dict[int, float], float, float]:
            stats = _stats(ready["stats_url"])
            pids = [stats["main_pid"], *stats["worker_pids"]]
            client_cpu = sum(cpu_seconds(c.pid) for c in clients)
            return (
                time.monotonic(),
                stats,
                {p: cpu_seconds(p) for p in pids},
                client_cpu,
                core_busy_seconds(ALL_CORES),
            )

        first = snapshot()
        for client in clients:
            assert client.stdin is not None
            client.stdin.write("start\n")
            client.stdin.flush()
        time.sleep(options.duration)
        for client in clients:
            assert client.stdin is not None
            client.stdin.write("stop\n")
            client.stdin.flush()
        last = snapshot()
        measured = [reader.next(timeout=60) for reader in lines]
    except (TimeoutError, RuntimeError, json.JSONDecodeError, OSError) as exc:
        return base | {
            "error": f"{exc}; server: {log_tail(server_log)} clients: {log_tail(clients_log)}"
        }
    finally:
        for client in clients:
            stop_process(client, timeout=20)
        stop_process(server, timeout=20)
        remove_groups(groups)
        server_log.close()
        clients_log.close()
    window = last[0] - first[0]
    main_pid = first[1]["main_pid"]
    worker_pids = first[1]["worker_pids"]
    if worker_pids != last[1]["worker_pids"]:
        return base | {"error": f"a worker restarted during the window: {worker_pids}"}
    cpu = {pid: last[2][pid] - first[2][pid] for pid in first[2]}
    server_cpu = sum(cpu.values())
    packets = last[1]["packets_forwarded"] - first[1]["packets_forwarded"]
    incoming = last[1]["packets_received"] - first[1]["packets_received"]
    fps = [value for result in measured for value in result["fps"]]
    client_cpu = last[3] - first[3]
    busy = last[4] - first[4]
    fps_min = round(min(fps), 2) if fps else None
    # What the publishers sent, times their audiences: what a server keeping up forwards.
    offered = incoming * load.subscribers
    return base | {
        "fwd_packets_per_s": round(packets / window),
        "fwd_share": round(packets / offered, 3) if offered else None,
        "rcv_packets_per_s": round(sum(r["received_packets"] for r in measured) / window),
        "in_packets_per_s": round(incoming / window),
        "main_cpu_pct": round(100 * cpu[main_pid] / window, 1),
        "worker_cpu_pct": [round(100 * cpu[pid] / window, 1) for pid in worker_pids],
        "server_cpu_pct": round(100 * server_cpu / window, 1),
        "us_per_fwd_packet": round(1e6 * server_cpu / packets, 1) if packets else None,
        "fps_min": fps_min,
        "fps_median": round(statistics.median(fps), 2) if fps else None,
        "holds_30fps": fps_min is not None and fps_min >= FPS_HELD,
        "subscribers": len(fps),
        "lost_packets": sum(r["lost_packets"] for r in measured),
        "client_cpu_pct": round(100 * client_cpu / window, 1),
        "others_cpu_pct": round(100 * max(0.0, busy - server_cpu - client_cpu) / window, 1),
        "machine_busy_pct": round(100 * busy / window, 1),
        "window_s": round(window, 2),
    }


def _projected(line: dict[str, Any]) -> float | None:
    """Packets/s where the busiest media process would fill its core, or its CPU budget."""
    busiest = max(line["worker_cpu_pct"] or [line["main_cpu_pct"]])
    budget = line.get("worker_cpu_limit_pct", 100)
    return float(line["fwd_packets_per_s"] * budget / busiest) if busiest else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def summarize(results: list[dict[str, Any]], options: Options) -> list[dict[str, Any]]:
    """Each setting against the first one: at equal load, and at capacity (measured, projected)."""
    good = [line for line in results if "error" not in line]

    def runs(setting: Setting, load: Load | None = None) -> list[dict[str, Any]]:
        return [
            line
            for line in good
            if line["setting"] == str(setting) and (load is None or line["load"] == str(load))
        ]

    summary: list[dict[str, Any]] = []
    capacity: dict[str, dict[str, float | None]] = {}
    for setting in options.settings:
        held = [line["fwd_packets_per_s"] for line in runs(setting) if line["holds_30fps"]]
        projected = [p for line in runs(setting) if (p := _projected(line)) is not None]
        capacity[str(setting)] = {
            "max_pps_holding_30fps": max(held) if held else None,
            "projected_pps": _median(projected),
        }
        summary.append(
            {"bench": "workers", "result": "capacity", "setting": str(setting)}
            | capacity[str(setting)]
        )
    base = options.settings[0]
    for other in options.settings[1:]:
        for load in options.loads:
            cost = [
                _median([line["us_per_fwd_packet"] for line in runs(s, load)])
                for s in (base, other)
            ]
            summary.append(
                {
                    "bench": "workers",
                    "result": "equal_load",
                    "load": str(load),
                    "of": f"{other}/{base}",
                    "us_per_packet": cost,
                    "cpu_per_packet_ratio": round(cost[1] / cost[0], 2)
                    if cost[0] and cost[1]
                    else None,
                }
            )
        ratio: dict[str, Any] = {"bench": "workers", "result": "ratio", "of": f"{other}/{base}"}
        for key in ("max_pps_holding_30fps", "projected_pps"):
            a, b = capacity[str(base)][key], capacity[str(other)][key]
            ratio[key] = round(b / a, 2) if a and b else None
        summary.append(ratio)
    return summary


def drive(options: Options) -> None:
    """Every (load, round, setting), settings taking turns; a JSON line each, then the summary."""
    results = []
    for load in options.loads:
        for round_ in range(1, options.rounds + 1):
            order = options.settings if round_ % 2 else list(reversed(options.settings))
            for setting in order:
                _progress(f"setting={setting} load={load} round={round_}")
                line = measure(setting, load, options, round_)
                results.append(line)
                _say(line)
    for line in summarize(results, options):
        _say(line)


def main(argv: list[str] | None = None) -> None:
    """The driver, or (as its children) the server or the clients."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        parser = argparse.ArgumentParser(prog="bench.workers serve")
        parser.add_argument("--workers", type=int, required=True)
        parser.add_argument("--ids", required=True)
        parser.add_argument("--pin", action="store_true")
        args = parser.parse_args(argv[1:])
        import logging

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        asyncio.run(run_server(args.workers, args.ids.split(","), args.pin))
        return
    if argv[:1] == ["clients"]:
        parser = argparse.ArgumentParser(prog="bench.workers clients")
        parser.add_argument("--join-url", action="append", required=True)
        parser.add_argument("--subscribers", type=int, required=True)
        parser.add_argument("--frames", type=Path, required=True)
        args = parser.parse_args(argv[1:])
        asyncio.run(run_clients(args.join_url, args.subscribers, args.frames))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settings",
        default="1,2",
        help="worker counts to compare, the first as the baseline; 0: media in the main "
        "process; 2p: two workers pinned to cores 0 and 1",
    )
    parser.add_argument("--loads", default="4x20,4x40,4x60", help="KxN: K huddles of N subscribers")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--bitrate", type=int, default=1_000_000)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument(
        "--worker-cpu",
        type=float,
        help="each worker's CPU budget, %% of one core (a cgroup v1 CFS quota; needs root)",
    )
    args = parser.parse_args(argv)
    if args.worker_cpu is not None and not os.access(CPU_CGROUP, os.W_OK):
        parser.error(f"--worker-cpu needs a writable cgroup v1 cpu controller at {CPU_CGROUP}")
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as folder:
        frames = Path(folder) / "publisher.vp8"
        save_frames(encode_loop(args.bitrate), frames)
        drive(
            Options(
                settings=[Setting.parse(text) for text in args.settings.split(",")],
                loads=[Load.parse(text) for text in args.loads.split(",")],
                warmup=args.warmup,
                duration=args.duration,
                rounds=args.rounds,
                bitrate=args.bitrate,
                client_processes=args.client_processes,
                frames=frames,
                worker_cpu=args.worker_cpu,
            )
        )


if __name__ == "__main__":
    main()
