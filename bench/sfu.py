"""SFU benchmark: server CPU per forwarded packet and subscriber fps, huddle's SFU against peers.

One synthetic publisher (aiortc, 640x480 at 30 fps VP8 pinned at --bitrate, plus Opus) and N
subscribers on the machine's own address. The server under test runs in its own process pinned to
one core; the publisher and subscribers run in another process pinned to the other core. For each
(server, N) the bench measures, over a steady window after a warm-up:

- the server's CPU time (utime + stime of its process, from /proc), as % of one core;
- the server's own count of RTP packets it sent to subscribers, hence CPU microseconds per packet
  (beside it, the packets the subscribers counted, which should agree);
- at each subscriber, video frames per second that arrived complete (counted from RTP, no decoding;
  a few subscribers also decode, as a check).

The servers, measured in the same run and interleaved (huddle, janus, janus-el1, relay, huddle...):

- ``huddle``: our SFU (media/, behind bench/serve.py);
- ``janus``: Janus VideoRoom (C, Debian's package, ``apt-get install janus``) with its default
  configuration (an event loop and thread per handle), driven through its HTTP API by the same
  aiortc publisher and subscribers (bench/janus.py); its packet count comes from its Admin API;
- ``janus-el1``: the same with ``event_loops = 1`` in janus.jcfg (every handle on one loop);
- ``relay``: aiortc's ``MediaRelay`` behind huddle's signaling protocol (bench/relay_server.py),
  which decodes once and re-encodes for every subscriber.

Output: one JSON line per (server, N), then per N the ratios against huddle (CPU per subscriber
against relay, CPU per packet against each Janus setting), the marginal cost of a subscriber on each
server (a least-squares line through the runs where the server keeps up), each server's CPU per
subscriber at its capacity, and the goals. Progress and warnings (another process on the server's
core, a saturated client core) go to stderr; a run disturbed by another process is measured again
(--retries).

    python bench/sfu.py                 # the full run (about 7 minutes on a quiet machine)
    python bench/sfu.py --quick         # a smoke run (under 2 minutes)
    python bench/sfu.py --servers huddle,janus-el1 --huddle-n 64 --janus-n 64 --rounds 3
    python bench/sfu.py --servers huddle --huddle-n 64 --profile-dir /tmp/prof  # bench.hotspots
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
#: The sampling profiler behind --profile-dir (``pip install py-spy``), beside this Python.
PY_SPY = str(Path(sys.executable).parent / "py-spy")

#: The servers, in the order the schedule interleaves them.
SERVERS = ("huddle", "janus", "janus-el1", "relay")
#: The Janus settings: server name -> ``event_loops`` in janus.jcfg (None: Janus's default).
JANUS_SETTINGS: dict[str, int | None] = {"janus": None, "janus-el1": 1}
#: Subscriber counts per server: the full run, and --quick.
DEFAULT_N = {"huddle": [1, 4, 16, 32, 64], "janus": [1, 4, 16, 32, 64], "relay": [1, 2, 3, 4, 6, 8]}
QUICK_N = {"huddle": [1, 64], "janus": [1, 64], "relay": [1, 2]}

#: The goals the SFU is held to (the issue): 30 fps at N=64 on one core, a subscriber costing at
#: least 30 times less CPU than on MediaRelay, and no more CPU per forwarded packet at N=64 than
#: Janus with one event loop (its most frugal setting) while every subscriber gets 30 fps.
GOAL_N = 64
GOAL_RATIO = 30.0
GOAL_PEER = "janus-el1"
#: A subscriber "holds 30 fps" at this many complete frames per second or more (one frame in 30
#: may be late across a window edge).
FPS_HELD = 29.0
#: Above this share of its core a server is CPU-bound: its CPU per subscriber understates the
#: cost, so such runs (and runs where fps fell below FPS_HELD) are left out of the marginal fit.
CPU_BOUND_PCT = 90.0
#: Warn when other processes took more than this share of the server's core during a window, or
#: the clients more than CLIENT_BUSY_PCT of theirs.
NOISE_PCT = 5.0
CLIENT_BUSY_PCT = 85.0


@dataclass(frozen=True)
class Options:
    """Everything a run needs, from the command line."""

    servers: list[str]
    #: Subscriber counts per server, by name.
    counts: dict[str, list[int]]
    warmup: float
    duration: float
    decoders: int
    bitrate: int
    rounds: int
    retries: int
    server_core: int
    client_core: int
    profile_dir: Path | None


def _emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def _progress(message: str) -> None:
    print(f"[sfu] {message}", file=sys.stderr, flush=True)


class JsonLines:
    """The stdout of a child process as JSON objects, one per line, read by a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put("")

    def next(self, timeout: float) -> dict[str, Any]:
        """The next line, parsed; TimeoutError or RuntimeError (the process ended) otherwise."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no output within {timeout:.0f} s") from None
        if not line:
            raise RuntimeError(f"exited with status {self._process.wait()} before reporting")
        parsed: dict[str, Any] = json.loads(line)
        return parsed


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM (every bench process shuts down cleanly on it), SIGKILL after ``timeout`` s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def log_tail(log: IO[str]) -> str:
    """The last 1,500 characters of a child's log file (for an error line)."""
    log.flush()
    log.seek(0)
    return log.read()[-1500:]


def _server_command(server: str, options: Options) -> list[str]:
    """The command that starts ``server`` and prints its ready line (pid, URLs)."""
    common = ["--bitrate", str(options.bitrate), "--core", str(options.server_core)]
    if server in JANUS_SETTINGS:
        # bench.janus itself stays on the clients' core; it pins Janus to the server's.
        event_loops = JANUS_SETTINGS[server]
        loops = [] if event_loops is None else ["--event-loops", str(event_loops)]
        return [sys.executable, "-m", "bench.janus", *common, *loops]
    return [sys.executable, "-m", "bench.serve", "--server", server, *common]


def measure(server: str, n: int, options: Options, round_: int) -> dict[str, Any]:
    """Start the server and the participants for one (server, N), return the result line."""
    python = sys.executable
    # Files, not pipes, for stderr: a chatty process must never block on a full pipe.
    serve_log = tempfile.TemporaryFile("w+")
    clients_log = tempfile.TemporaryFile("w+")
    serve = subprocess.Popen(
        _server_command(server, options),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=serve_log,
        text=True,
    )
    clients: subprocess.Popen[str] | None = None
    profiler: subprocess.Popen[str] | None = None
    try:
        ready = JsonLines(serve).next(timeout=60)
        clients = subprocess.Popen(
            [
                python,
                "-m",
                "bench.participants",
                "--join-url",
                ready["join_url"],
                "--stats-url",
                ready["stats_url"],
                "--server-pid",
                str(ready["pid"]),
                "--subscribers",
                str(n),
                "--decoders",
                str(min(options.decoders, n)),
                "--warmup",
                str(options.warmup),
                "--duration",
                str(options.duration),
                "--bitrate",
                str(options.bitrate),
                "--core",
                str(options.client_core),
                "--signaling",
                ready.get("signaling", "huddle"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=clients_log,
            text=True,
        )
        budget = 90 + 1.5 * n + options.warmup + options.duration
        lines = JsonLines(clients)
        window = lines.next(timeout=budget)
        if options.profile_dir is not None and server == "huddle":
            profiler = _start_profiler(ready["pid"], server, n, options)
        measured = lines.next(timeout=options.duration + 30)
        assert window.get("event") == "window", window
    except (TimeoutError, RuntimeError, json.JSONDecodeError) as exc:
        tail = f"server: {log_tail(serve_log)} clients: {log_tail(clients_log)}"
        return {
            "bench": "sfu",
            "server": server,
            "n": n,
            "round": round_,
            "error": f"{exc}; {tail}",
        }
    finally:
        if clients is not None:
            stop_process(clients)
        if profiler is not None:
            try:
                profiler.wait(timeout=options.duration + 60)
            except subprocess.TimeoutExpired:
                profiler.kill()
                profiler.wait()
        stop_process(serve)
        serve_log.close()
        clients_log.close()
    return _result_line(server, n, round_, measured)


def _start_profiler(pid: int, server: str, n: int, options: Options) -> subprocess.Popen[str]:
    """py-spy on the server for the measured window, native frames included.

    py-spy pauses the server for each sample (unpaused sampling tears Python stacks), so a profiled
    run's CPU numbers are a little high: profile in a run of its own.
    """
    assert options.profile_dir is not None
    options.profile_dir.mkdir(parents=True, exist_ok=True)
    output = options.profile_dir / f"{server}-n{n}.txt"
    profiler = subprocess.Popen(
        [
            PY_SPY,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(options.duration)),
            "--rate",
            "200",
            "--native",
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    # Off the server's core (best effort: py-spy may have started a thread already).
    os.sched_setaffinity(profiler.pid, {options.client_core})
    return profiler


def _result_line(server: str, n: int, round_: int, m: dict[str, Any]) -> dict[str, Any]:
    window = m["window_s"]
    cpu_pct = 100 * m["server_cpu_s"] / window
    packets = m["packets_forwarded"]
    return {
        "bench": "sfu",
        "server": server,
        "n": n,
        "round": round_,
        "server_cpu_pct": round(cpu_pct, 1),
        "cpu_per_subscriber_pct": round(cpu_pct / n, 3),
        "fwd_packets_per_s": round(packets / window),
        # RTP packets the subscribers counted: agrees with the server's own count above.
        "rcv_packets_per_s": round(m["packets_received"] / window),
        "us_per_fwd_packet": round(1e6 * m["server_cpu_s"] / packets, 1) if packets else None,
        "fps_min": m["fps"]["min"],
        "fps_median": m["fps"]["median"],
        "fps_decoded_min": m["fps_decoded"]["min"],
        "subscribers_receiving": m["subscribers_receiving"],
        "lost_packets": m["lost_packets"],
        "publisher_fps": m["publisher_fps"],
        "video_kbps_median": m["video_kbps"]["median"],
        "audio_pps_median": m["audio_pps"]["median"],
        "client_cpu_pct": round(100 * m["client_cpu_s"] / window, 1),
        "server_core_others_pct": round(100 * max(0.0, m["server_core_others_s"]) / window, 1),
        "window_s": window,
        "setup_s": m["receiving_s"],
    }


def _schedule(options: Options) -> Iterator[tuple[str, int, int]]:
    """(server, N, round), alternating servers so that drift hits all alike."""
    for round_ in range(1, options.rounds + 1):
        rows = itertools.zip_longest(
            *([(server, n) for n in options.counts[server]] for server in options.servers)
        )
        for row in rows:
            for item in row:
                if item is not None:
                    yield item[0], item[1], round_


def _by_n(
    results: list[dict[str, Any]],
    server: str,
    key: str,
    combine: Callable[[list[float]], float] = statistics.median,
) -> dict[int, float]:
    """``key`` of ``server``'s runs by N, rounds combined (median unless told otherwise)."""
    values: dict[int, list[float]] = {}
    for line in results:
        if line["server"] == server and line.get(key) is not None:
            values.setdefault(line["n"], []).append(float(line[key]))
    return {n: combine(v) for n, v in sorted(values.items())}


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float] | None:
    """Least-squares (slope, intercept) of ``ys`` against ``xs``; None with fewer than 2 points."""
    if len(set(xs)) < 2:
        return None
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, mean_y - slope * mean_x


def _capacity(results: list[dict[str, Any]], server: str) -> int | None:
    """The largest N at which ``server`` held 30 fps at every subscriber in at least one round."""
    best_fps = _by_n(results, server, "fps_min", max)
    return max((n for n, fps in best_fps.items() if fps >= FPS_HELD), default=None)


def _at_capacity(results: list[dict[str, Any]]) -> dict[str, Any]:
    """CPU per subscriber of each server at the largest N where it held 30 fps, and the ratio
    MediaRelay / huddle.

    Each server's fixed cost is spread over as many subscribers as it can serve; a second view
    beside the marginal cost.
    """
    line: dict[str, Any] = {"bench": "sfu", "result": "at_capacity"}
    for server in SERVERS:
        n = _capacity(results, server)
        key = server.replace("-", "_")
        line[f"{key}_n"] = n
        line[f"{key}_cpu_per_subscriber_pct"] = (
            None if n is None else round(_by_n(results, server, "cpu_per_subscriber_pct")[n], 3)
        )
    ours, theirs = line["huddle_cpu_per_subscriber_pct"], line["relay_cpu_per_subscriber_pct"]
    line["ratio"] = round(theirs / ours, 1) if ours and theirs else None
    return line


def _marginal(results: list[dict[str, Any]], server: str) -> dict[str, Any]:
    """The cost of one more subscriber on ``server``: least squares over the runs it kept up.

    Two lines through the same runs: CPU % against N (per subscriber), and CPU % against the
    forwarded packet rate (per packet, in CPU microseconds: the fixed cost of receiving the
    publisher stays out of it).
    """
    cpu = _by_n(results, server, "server_cpu_pct")
    rate = _by_n(results, server, "fwd_packets_per_s")
    # Runs where the server kept up: below CPU_BOUND_PCT, and every subscriber at 30 fps in at
    # least one round (a round can lose frames to another process on a shared machine).
    best_fps = _by_n(results, server, "fps_min", max)
    kept_up = [n for n, c in cpu.items() if c < CPU_BOUND_PCT and best_fps[n] >= FPS_HELD]
    per_subscriber = _fit([float(n) for n in kept_up], [cpu[n] for n in kept_up])
    with_rate = [n for n in kept_up if n in rate]
    # 1% of a core for one packet per second is 10,000 us per packet.
    per_packet = _fit([rate[n] for n in with_rate], [cpu[n] for n in with_rate])
    return {
        "bench": "sfu",
        "result": "marginal",
        "server": server,
        "cpu_pct_per_subscriber": round(per_subscriber[0], 3) if per_subscriber else None,
        "fixed_cpu_pct": round(per_subscriber[1], 1) if per_subscriber else None,
        "us_per_packet": round(per_packet[0] * 10_000, 1) if per_packet else None,
        "fit_n": kept_up,
        "max_n_holding_30fps": _capacity(results, server),
    }


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Same-N ratios, marginal cost per subscriber of each server, and the goals."""
    ok = [line for line in results if "error" not in line]
    servers = [server for server in SERVERS if any(line["server"] == server for line in ok)]
    lines: list[dict[str, Any]] = []
    per_sub = {s: _by_n(ok, s, "cpu_per_subscriber_pct") for s in ("huddle", "relay")}
    for n in sorted(set(per_sub["huddle"]) & set(per_sub["relay"])):
        ours, theirs = per_sub["huddle"][n], per_sub["relay"][n]
        lines.append(
            {
                "bench": "sfu",
                "result": "same_n_ratio",
                "n": n,
                "relay_cpu_per_subscriber_pct": round(theirs, 3),
                "huddle_cpu_per_subscriber_pct": round(ours, 3),
                "ratio": round(theirs / ours, 1) if ours > 0 else None,
            }
        )
    # CPU per forwarded packet against each Janus setting: ours / theirs (below 1: we spend less).
    per_packet = {s: _by_n(ok, s, "us_per_fwd_packet") for s in SERVERS}
    for peer in JANUS_SETTINGS:
        for n in sorted(set(per_packet["huddle"]) & set(per_packet[peer])):
            ours, theirs = per_packet["huddle"][n], per_packet[peer][n]
            lines.append(
                {
                    "bench": "sfu",
                    "result": "us_per_packet_ratio",
                    "n": n,
                    "peer": peer,
                    "huddle_us_per_fwd_packet": round(ours, 1),
                    "peer_us_per_fwd_packet": round(theirs, 1),
                    "ratio": round(ours / theirs, 2) if theirs > 0 else None,
                }
            )
    marginal = {server: _marginal(ok, server) for server in servers}
    lines += marginal.values()
    lines.append(_at_capacity(ok))
    fps = {s: _by_n(ok, s, "fps_min").get(GOAL_N) for s in SERVERS}
    us = {s: per_packet[s].get(GOAL_N) for s in SERVERS}
    cpu_at_goal = _by_n(ok, "huddle", "server_cpu_pct").get(GOAL_N)
    ours_m = marginal.get("huddle", {}).get("cpu_pct_per_subscriber")
    theirs_m = marginal.get("relay", {}).get("cpu_pct_per_subscriber")
    ratio = theirs_m / ours_m if ours_m and theirs_m and ours_m > 0 else None
    ours_us, peer_us = us["huddle"], us[GOAL_PEER]
    lines.append(
        {
            "bench": "sfu",
            "result": "goals",
            "n": GOAL_N,
            "huddle_fps_min": fps["huddle"],
            "huddle_server_cpu_pct": cpu_at_goal,
            # None: not measured in this run (N=64 not in --huddle-n, or no fit).
            "holds_30fps_on_one_core": (
                None
                if fps["huddle"] is None or cpu_at_goal is None
                else fps["huddle"] >= FPS_HELD and cpu_at_goal < 100
            ),
            "marginal_ratio_relay_over_huddle": round(ratio, 1) if ratio else None,
            "ratio_at_least_30x": None if ratio is None else ratio >= GOAL_RATIO,
            "huddle_us_per_fwd_packet": ours_us,
            "janus_us_per_fwd_packet": us["janus"],
            "janus_el1_us_per_fwd_packet": us["janus-el1"],
            "janus_el1_fps_min": fps["janus-el1"],
            # Ours at N=64 costs no more per packet than Janus with one event loop, at 30 fps.
            "at_most_janus_el1_us_per_packet": (
                None
                if ours_us is None or peer_us is None or fps["huddle"] is None
                else ours_us <= peer_us and fps["huddle"] >= FPS_HELD
            ),
            "max_server_core_others_pct": max(
                (line["server_core_others_pct"] for line in ok), default=None
            ),
        }
    )
    return lines


def parse_options(argv: list[str] | None = None) -> Options:
    """The command line; --quick is a smoke run of under 2 minutes."""
    cores = sorted(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: few N, short windows")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"servers to measure, interleaved in this order ({','.join(SERVERS)})",
    )
    parser.add_argument("--huddle-n", help="subscriber counts for huddle's SFU (1,4,16,32,64)")
    parser.add_argument(
        "--janus-n", help="subscriber counts for both Janus settings (1,4,16,32,64)"
    )
    parser.add_argument("--relay-n", help="subscriber counts for MediaRelay (1,2,3,4,6,8)")
    parser.add_argument("--warmup", type=float, help="seconds between all-receiving and window (5)")
    parser.add_argument("--duration", type=float, help="seconds in the measured window (10)")
    parser.add_argument("--decoders", type=int, default=2, help="subscribers that also decode")
    parser.add_argument("--bitrate", type=int, default=1_000_000, help="publisher VP8 bit/s")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the schedule; medians used")
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help="measure a (server, N) again if it failed or other processes used its core (1)",
    )
    parser.add_argument("--server-core", type=int, default=cores[0])
    parser.add_argument("--client-core", type=int, default=cores[-1])
    parser.add_argument(
        "--profile-dir", type=Path, help="py-spy the huddle server's window into this directory"
    )
    args = parser.parse_args(argv)
    if args.profile_dir is not None and not os.access(PY_SPY, os.X_OK):
        parser.error(f"--profile-dir needs py-spy at {PY_SPY}: pip install py-spy")
    servers = [part.strip() for part in args.servers.split(",") if part.strip()]
    unknown = sorted(set(servers) - set(SERVERS))
    if unknown:
        parser.error(f"unknown servers {', '.join(unknown)}: choose from {', '.join(SERVERS)}")

    def counts(text: str | None, family: str) -> list[int]:
        if text is not None:  # "" runs that server not at all
            return [int(part) for part in text.split(",") if part.strip()]
        return (QUICK_N if args.quick else DEFAULT_N)[family]

    janus_n = counts(args.janus_n, "janus")
    return Options(
        servers=servers,
        counts={
            "huddle": counts(args.huddle_n, "huddle"),
            "janus": janus_n,
            "janus-el1": janus_n,
            "relay": counts(args.relay_n, "relay"),
        },
        warmup=args.warmup if args.warmup is not None else (2.0 if args.quick else 5.0),
        duration=args.duration if args.duration is not None else (4.0 if args.quick else 10.0),
        decoders=args.decoders,
        bitrate=args.bitrate,
        rounds=args.rounds,
        retries=args.retries,
        server_core=args.server_core,
        client_core=args.client_core,
        profile_dir=args.profile_dir,
    )


def _intrusion(line: dict[str, Any]) -> float:
    """How much other processes used the server's core (failed runs count as the worst)."""
    if "error" in line:
        return 1000.0
    return float(line["server_core_others_pct"])


def main(argv: list[str] | None = None) -> int:
    """Run the schedule, print the JSON lines; exit status 1 if any run failed."""
    options = parse_options(argv)
    if any(options.counts[s] for s in options.servers if s in JANUS_SETTINGS) and not shutil.which(
        "janus"
    ):
        _progress(
            "Janus is not installed: apt-get install janus (or `make bench`, which installs it); "
            "or leave Janus out: --servers huddle,relay"
        )
        return 2
    if options.server_core == options.client_core:
        _progress("warning: server and clients share one core; numbers will not mean much")
    os.sched_setaffinity(0, {options.client_core})
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    for server, n, round_ in _schedule(options):
        line: dict[str, Any] = {}
        for attempt in range(1, options.retries + 2):
            _progress(f"{server} N={n} round {round_} ({time.monotonic() - started:.0f} s)")
            measured = measure(server, n, options, round_)
            measured["attempt"] = attempt
            if not line or _intrusion(measured) < _intrusion(line):
                line = measured
            if _intrusion(line) <= NOISE_PCT:
                break
            _progress(
                f"other processes used {measured.get('server_core_others_pct')}% of the "
                "server's core during the window: the machine is busy"
                + (", measuring again" if attempt <= options.retries else "")
            )
        _emit(line)
        if _intrusion(line) > NOISE_PCT:
            _progress("warning: this result is noisy (a busy machine)")
        if line.get("client_cpu_pct", 0) > CLIENT_BUSY_PCT:
            _progress(
                f"warning: the clients used {line['client_cpu_pct']}% of their core: "
                "subscriber fps may be limited by the clients, not the server"
            )
        results.append(line)
    for line in summarize(results):
        _emit(line)
    _progress(f"done in {time.monotonic() - started:.0f} s")
    return 1 if any("error" in line for line in results) else 0


if __name__ == "__main__":
    sys.exit(main())
