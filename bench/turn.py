"""TURN relay cost: the same 4-party call direct to huddle's SFU and relayed through coturn.

Two network namespaces joined by a veth pair, addresses in 198.18.0.0/15 (tests/net/hosts.py):

    clients 198.18.12.2 ---- 198.18.12.1 server: `huddle serve` + Debian's coturn
                                          (manifests/turnserver.conf, as tests/net/turn.py runs it)

Four aiortc participants (media.contrib.client.HuddleClient), in one process inside the client
namespace, each publish VP8 (640x480 at 30 fps, ~1 Mbit/s, encoded once by this driver and replayed,
so that publishing costs the client core next to nothing) and Opus, and receive the other three.
The first ``--decoders`` of them (default 1) decode what they receive; the others count video
frames as they complete on the wire (RTP marker bit, after SRTP): twelve 640x480 decoders in one
Python process would saturate the client core and measure the client, not the path.
``direct``: they reach the SFU's host candidates. ``relay``: their RTCConfiguration carries the TURN
URL with a time-limited credential per participant (media.turn.turn_credential, the secret being
coturn's static-auth-secret) and ``iceTransportPolicy="relay"``, so every packet goes client ->
coturn -> huddle and back. Both use ``bundlePolicy="max-bundle"``, as the browser client does.
huddle (media in its main process, the default) and coturn are pinned to one core
(``--server-core``), the clients and this driver to the other (``--client-core``). Modes take
turns (direct, relay, then relay, direct), each call in a fresh huddle (`/meet` in the web chat).

For each (mode, round) one JSON line, over a steady window after a warm-up:

- ``fwd_packets_per_s``: RTP packets the SFU forwarded (its /metrics, read on the server host's
  loopback), and ``wire_packets_per_s`` / ``wire_kbps``: UDP between the two hosts, both ways
  (nftables counters on the server host); ``relayed_packets_per_s``: those to or from coturn;
- ``huddle_cpu_pct`` and ``us_per_fwd_packet``: the huddle process's CPU (utime + stime from
  /proc, every thread) and that per forwarded packet; ``coturn_cpu_pct``,
  ``coturn_us_per_relayed_packet`` and ``coturn_us_per_fwd_packet``; ``server_us_per_fwd_packet``:
  huddle's and coturn's CPU together, per forwarded packet;
- ``rtt_ms``: the publishers' round-trip time to the SFU from RTCP, one sample per receiver
  report the SFU sends (the sum behind aiortc's ``remote-inbound-rtp`` ``roundTripTime``, taken
  before aiortc's moving average; see :meth:`Caller.record_round_trips`);
- ``fps_wire`` (every pair of participants), ``fps_decoded`` and ``audio_fps_decoded`` (the
  decoders' pairs), so it is known that the call held; ``paths``: each participant's nominated
  local candidate type (host or relay);
- ``client_cpu_pct``; ``server_core_others_pct`` and ``client_core_others_pct``: anything else
  on either core (the machine may be shared).

Then one line per mode with the medians over rounds, and one with relay / direct ratios.

    sudo .venv/bin/python -m bench.turn                    # 3 rounds of each mode (~3 minutes)
    sudo .venv/bin/python -m bench.turn --rounds 2 --duration 10 --warmup 4

Needs root (network namespaces, nftables) and Debian's coturn (``apt-get install coturn``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)
from aiortc.rtp import RtcpRrPacket, RtcpSrPacket

from adapters.tls import LocalCA
from bench.participants import core_busy_seconds, cpu_seconds
from bench.workers import (
    ReplayedCamera,
    encode_loop,
    load_frames,
    save_frames,
    stdin_commands,
)
from media.contrib.client import HuddleClient
from media.turn import turn_credential

if TYPE_CHECKING:
    from tests.net.hosts import Network

ROOT = Path(__file__).resolve().parent.parent
MODES = ("direct", "relay")
#: The call's link, and the driver's admin link to the server host (a /30 from the root).
SERVER, CLIENT = "198.18.12.1", "198.18.12.2"
ADMIN_ROOT, ADMIN = "198.18.212.1", "198.18.212.2"
HTTP_PORT = 8080
TURN_PORT = 3478
TURN_URL = f"turn:{SERVER}:{TURN_PORT}?transport=udp"
#: The nftables table on the server host that counts the call's UDP (named counters).
COUNTERS = ("wire_in", "wire_out", "relay_in", "relay_out")
#: Decoded frames per second a pair must get for a run to "hold 30 fps".
FPS_HELD = 29.0


def _say(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def _progress(message: str) -> None:
    print(f"[turn] {message}", file=sys.stderr, flush=True)


def _summary(values: list[float], digits: int = 2) -> dict[str, float | None]:
    if not values:
        return {"min": None, "median": None, "max": None}
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


# -- the clients process (inside the client namespace) -------------------------------------------


class Caller(HuddleClient):
    """One of the call's people: replayed VP8 and Opus out, the others' media decoded or counted."""

    def __init__(
        self,
        join_url: str,
        name: str,
        frames: list[bytes],
        configuration: RTCConfiguration,
        *,
        decode: bool,
    ) -> None:
        super().__init__(join_url, name, publish_audio=True, publish_video=False, decode=decode)
        # HuddleClient takes STUN URLs only; TURN needs a credential and the relay-only policy.
        self.pc = RTCPeerConnection(configuration)
        # Added before join(): the publishing offer then carries this camera and the tone.
        self.pc.addTransceiver(ReplayedCamera(frames), direction="sendonly")

    def path(self) -> str | None:
        """The nominated pair's local candidate type (``host``, ``relay``), once connected."""
        for transceiver in self.pc.getTransceivers():
            transport = transceiver.sender.transport
            if transport is None:
                continue
            nominated = transport.transport._connection._nominated
            if nominated:
                kind: str = next(iter(nominated.values())).local_candidate.type
                return kind
        return None

    def record_round_trips(self, into: list[float]) -> None:
        """Append to ``into`` the round-trip time (s) that each receiver report gives.

        The same sum aiortc's sender does (now - when it sent the reported SR - the SFU's delay
        since receiving it), but each sample as is: getStats' ``roundTripTime`` is a moving
        average that still carries a spike from the call's start (joins, first keyframes) well
        into a 10 s window.
        """
        for transceiver in self.pc.getTransceivers():
            sender = transceiver.sender
            if sender.track is None:
                continue
            handle = sender._handle_rtcp_packet

            async def recording(packet: Any, sender: Any = sender, handle: Any = handle) -> None:
                if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
                    sent_lsr = sender._RTCRtpSender__lsr
                    for report in packet.reports:
                        if report.ssrc == sender._ssrc and report.dlsr and report.lsr == sent_lsr:
                            sent_at: float = sender._RTCRtpSender__lsr_time
                            into.append(time.time() - sent_at - report.dlsr / 65536)
                await handle(packet)

            sender._handle_rtcp_packet = recording  # type: ignore[method-assign]


def configuration(mode: str, name: str, secret: bytes) -> RTCConfiguration:
    """What the participant's peer connection is given: nothing, or TURN and relay only."""
    # One transport for audio and video, as the browser client asks (media/web/huddle.js).
    if mode == "direct":
        return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    # A credential of its own, as each join page gets (coturn's user-quota counts per name).
    username, password = turn_credential(secret, time.time() + 3600, name)
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=TURN_URL, username=username, credential=password)],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )


@dataclass(frozen=True)
class CallCounters:
    """The clients' counters at one instant; lists are per (caller, other caller) pair."""

    at: float
    cpu: float
    #: Video frames completed on the wire (RTP marker), every pair.
    video_frames: list[int]
    #: Video and audio frames decoded, the pairs whose caller decodes.
    decoded: list[int]
    audio_decoded: list[int]


def _rates(before: list[int], after: list[int], seconds: float) -> list[float]:
    return [(b - a) / seconds for a, b in zip(before, after, strict=True)]


async def run_clients(
    join_url: str, mode: str, people: int, decoders: int, frames_path: Path
) -> None:
    """Fill the call, say ``receiving``, then measure between ``start`` and ``stop`` on stdin."""
    started = time.monotonic()
    secret = os.environ.get("HUDDLE_TURN_SECRET", "").encode()
    frames = load_frames(frames_path)
    callers = [
        Caller(
            join_url,
            f"caller-{i}",
            frames,
            configuration(mode, f"caller-{i}", secret),
            decode=i < decoders,
        )
        for i in range(people)
    ]
    for caller in callers:
        await caller.join(within=30.0)
    ids = [str(caller.you["id"]) for caller in callers if caller.you is not None]
    pairs = [
        (c, other) for c, own in zip(callers, ids, strict=True) for other in ids if other != own
    ]

    def all_receiving() -> bool:
        # 1 s of video from everyone, decoded where the caller decodes.
        return all(
            c.received_from(other).video_frames >= 30
            and (not c.decode or c.received_from(other).frames_decoded >= 30)
            for c, other in pairs
        )

    with contextlib.suppress(TimeoutError):
        await callers[0].wait_for(all_receiving, within=60.0)
    _say(
        {
            "event": "receiving",
            "setup_s": round(time.monotonic() - started, 1),
            "all_receiving": all_receiving(),
            "paths": [caller.path() for caller in callers],
        }
    )

    commands = stdin_commands()

    decoding = [(c, other) for c, other in pairs if c.decode]

    def counters() -> CallCounters:
        times = os.times()
        return CallCounters(
            at=time.monotonic(),
            cpu=times.user + times.system,
            video_frames=[c.received_from(other).video_frames for c, other in pairs],
            decoded=[c.received_from(other).frames_decoded for c, other in decoding],
            audio_decoded=[c.received_from(other).audio_frames_decoded for c, other in decoding],
        )

    rtts: list[float] = []
    for caller in callers:
        caller.record_round_trips(rtts)

    while await commands.get() != "start":
        pass
    rtts.clear()
    first = counters()
    while await commands.get() != "stop":
        pass
    last = counters()
    window_rtts = list(rtts)
    window = last.at - first.at
    _say(
        {
            "event": "measured",
            "window_s": round(window, 2),
            "client_cpu_s": round(last.cpu - first.cpu, 3),
            "fps_wire": _rates(first.video_frames, last.video_frames, window),
            "fps_decoded": _rates(first.decoded, last.decoded, window),
            "audio_fps_decoded": _rates(first.audio_decoded, last.audio_decoded, window),
            "rtt_ms": [1000 * rtt for rtt in window_rtts],
            "paths": [caller.path() for caller in callers],
        }
    )
    # Tearing the call down would only add time; the server sees the sockets close.
    os._exit(0)


# -- the driver -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """Everything a run needs, from the command line."""

    rounds: int
    people: int
    decoders: int
    warmup: float
    duration: float
    bitrate: int
    server_core: int
    client_core: int


@dataclass(frozen=True)
class ServerSnapshot:
    """The server host's counters at one instant."""

    at: float
    huddle_cpu: float
    coturn_cpu: float
    #: Busy time of the server's core and of the clients' core, whoever used it.
    core_busy: float
    client_core_busy: float
    forwarded: int
    #: nftables counters (packets, bytes) by name: UDP from and to the client host.
    counters: dict[str, tuple[int, int]]


def pin(pid: int, cores: set[int]) -> None:
    """Pin every thread of ``pid`` to ``cores`` (threads started later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cores)


class CallNetwork:
    """The two hosts, the admin link, coturn and `huddle serve` on the server host."""

    def __init__(self, net: Network, folder: Path, secret: str) -> None:
        # Imported here: the clients process needs none of the test harness (pytest, Playwright).
        from tests.net.serve import HostedServe
        from tests.net.turn import Coturn

        self.server = net.host("srv")
        self.client = net.host("cli")
        net.link(self.server, f"{SERVER}/24", self.client, f"{CLIENT}/24")
        net.admin_link(self.server, ADMIN_ROOT, ADMIN)
        tls = LocalCA(folder / "turn-ca").ensure([SERVER])
        self.turn = Coturn(
            self.server,
            folder,
            address=SERVER,
            media_address=SERVER,
            secret=secret,
            cert=tls.files.cert,
            key=tls.files.key,
        )
        self.serve = HostedServe(
            self.server,
            folder / "data",
            admin_address=ADMIN,
            public_url=f"http://{SERVER}:{HTTP_PORT}",
            port=HTTP_PORT,
            env={"HUDDLE_LOG_LEVEL": "WARNING"},
        )

    async def start(self, core: int) -> None:
        await self.turn.start()
        await self.serve.start()
        assert self.turn.process is not None
        pin(self.turn.process.pid, {core})
        pin(self.serve.pid, {core})
        rules = "\n".join(f"  counter {name} {{}}" for name in COUNTERS)
        self.server.nft(
            "table ip huddle_bench {\n"
            f"{rules}\n"
            "  chain input {\n"
            "    type filter hook input priority -10; policy accept;\n"
            f'    ip saddr {CLIENT} meta l4proto udp counter name "wire_in"\n'
            f'    ip saddr {CLIENT} udp dport {TURN_PORT} counter name "relay_in"\n'
            "  }\n"
            "  chain output {\n"
            "    type filter hook output priority -10; policy accept;\n"
            f'    ip daddr {CLIENT} meta l4proto udp counter name "wire_out"\n'
            f'    ip daddr {CLIENT} udp sport {TURN_PORT} counter name "relay_out"\n'
            "  }\n"
            "}\n"
        )

    async def stop(self) -> None:
        try:
            await self.serve.stop()
        finally:
            await self.turn.stop()

    async def meet(self, title: str) -> str:
        """A new huddle (`/meet` in the web chat); its join link."""
        async with aiohttp.ClientSession() as http:
            return await self.serve.meet(http, title)

    def snapshot(self, core: int, client_core: int) -> ServerSnapshot:
        """CPU of huddle and coturn, the SFU's forwarded count, the UDP counters: now."""
        assert self.turn.process is not None
        # /metrics on the server's own loopback: it stays readable there whoever else may not.
        metrics = self.server.run("curl", "-sf", f"http://127.0.0.1:{HTTP_PORT}/metrics")
        match = re.search(r"^huddle_forwarded_packets_total (\S+)$", metrics, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"no huddle_forwarded_packets_total in /metrics: {metrics[:300]}")
        listed = json.loads(
            self.server.run("nft", "-j", "list", "counters", "table", "ip", "huddle_bench")
        )
        counters = {
            item["counter"]["name"]: (item["counter"]["packets"], item["counter"]["bytes"])
            for item in listed["nftables"]
            if "counter" in item and item["counter"]["table"] == "huddle_bench"
        }
        return ServerSnapshot(
            at=time.monotonic(),
            huddle_cpu=cpu_seconds(self.serve.pid),
            coturn_cpu=cpu_seconds(self.turn.process.pid),
            core_busy=core_busy_seconds({core}),
            client_core_busy=core_busy_seconds({client_core}),
            forwarded=int(float(match[1])),
            counters=counters,
        )


async def _line(process: asyncio.subprocess.Process, within: float) -> dict[str, Any]:
    """The next JSON line of a child's stdout."""
    assert process.stdout is not None
    raw = await asyncio.wait_for(process.stdout.readline(), timeout=within)
    if not raw:
        raise RuntimeError(f"clients exited with status {await process.wait()} before reporting")
    line: dict[str, Any] = json.loads(raw)
    return line


async def _tell(process: asyncio.subprocess.Process, command: str) -> None:
    assert process.stdin is not None
    process.stdin.write(f"{command}\n".encode())
    await process.stdin.drain()


async def measure(
    call: CallNetwork, mode: str, round_: int, options: Options, frames: Path, secret: str
) -> dict[str, Any]:
    """One call in ``mode``: a fresh huddle, the clients process, one window; the result line."""
    base: dict[str, Any] = {"bench": "turn", "mode": mode, "round": round_}
    join_url = await call.meet(f"TURN bench {mode} {round_}")
    log_path = frames.parent / f"clients-{mode}-{round_}.log"
    with log_path.open("wb") as log:
        clients = await call.client.spawn(
            sys.executable,
            "-m",
            "bench.turn",
            "clients",
            "--join-url",
            join_url,
            "--mode",
            mode,
            "--people",
            str(options.people),
            "--decoders",
            str(options.decoders),
            "--frames",
            str(frames),
            "--core",
            str(options.client_core),
            cwd=str(ROOT),
            env={**os.environ, "HUDDLE_TURN_SECRET": secret},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
    try:
        ready = await _line(clients, within=120)
        if not ready.get("all_receiving"):
            raise RuntimeError(f"the call did not come up: {ready}")
        await asyncio.sleep(options.warmup)
        first = call.snapshot(options.server_core, options.client_core)
        await _tell(clients, "start")
        await asyncio.sleep(options.duration)
        await _tell(clients, "stop")
        last = call.snapshot(options.server_core, options.client_core)
        measured = await _line(clients, within=30)
    except (TimeoutError, RuntimeError, json.JSONDecodeError) as exc:
        clients_log = log_path.read_text(errors="replace")[-1500:]
        return base | {"error": f"{exc}; clients: {clients_log} server: {call.serve.log()[-1500:]}"}
    finally:
        if clients.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                clients.kill()
        await clients.wait()
    return base | _result(ready, measured, first, last)


def _result(
    ready: dict[str, Any], measured: dict[str, Any], first: ServerSnapshot, last: ServerSnapshot
) -> dict[str, Any]:
    window = last.at - first.at
    packets = last.forwarded - first.forwarded
    huddle_cpu = last.huddle_cpu - first.huddle_cpu
    coturn_cpu = last.coturn_cpu - first.coturn_cpu
    delta = {
        name: (
            last.counters[name][0] - first.counters[name][0],
            last.counters[name][1] - first.counters[name][1],
        )
        for name in COUNTERS
    }
    wire_in, wire_out = delta["wire_in"][0], delta["wire_out"][0]
    wire = wire_in + wire_out
    wire_bytes = delta["wire_in"][1] + delta["wire_out"][1]
    relayed = delta["relay_in"][0] + delta["relay_out"][0]
    fps = measured["fps_wire"] + measured["fps_decoded"]
    client_cpu = measured["client_cpu_s"] / measured["window_s"] * window
    rtt = sorted(measured["rtt_ms"])

    def per_packet(cpu: float, count: int) -> float | None:
        return round(1e6 * cpu / count, 1) if count else None

    return {
        "paths": sorted(set(measured["paths"]), key=str),
        "setup_s": ready["setup_s"],
        "fwd_packets_per_s": round(packets / window),
        "wire_packets_per_s": round(wire / window),
        "wire_in_packets_per_s": round(wire_in / window),
        "wire_out_packets_per_s": round(wire_out / window),
        "wire_kbps": round(8 * wire_bytes / window / 1000),
        "relayed_packets_per_s": round(relayed / window),
        "huddle_cpu_pct": round(100 * huddle_cpu / window, 1),
        "us_per_fwd_packet": per_packet(huddle_cpu, packets),
        "coturn_cpu_pct": round(100 * coturn_cpu / window, 1),
        "coturn_us_per_relayed_packet": per_packet(coturn_cpu, relayed),
        "coturn_us_per_fwd_packet": per_packet(coturn_cpu, packets),
        "server_us_per_fwd_packet": per_packet(huddle_cpu + coturn_cpu, packets),
        "rtt_ms": _summary(rtt, 3)
        | {"p90": round(rtt[int(0.9 * (len(rtt) - 1))], 3) if rtt else None},
        "rtt_samples": len(rtt),
        "fps_wire": _summary(measured["fps_wire"]),
        "fps_decoded": _summary(measured["fps_decoded"]),
        "audio_fps_decoded": _summary(measured["audio_fps_decoded"]),
        "holds_30fps": bool(fps) and min(fps) >= FPS_HELD,
        "client_cpu_pct": round(100 * measured["client_cpu_s"] / measured["window_s"], 1),
        "server_core_others_pct": round(
            100 * max(0.0, (last.core_busy - first.core_busy) - huddle_cpu - coturn_cpu) / window, 1
        ),
        "client_core_others_pct": round(
            100 * max(0.0, (last.client_core_busy - first.client_core_busy) - client_cpu) / window,
            1,
        ),
        "window_s": round(window, 2),
    }


#: Per mode, the medians over rounds of these (a nested key as "parent.child").
SUMMARY_KEYS = (
    "fwd_packets_per_s",
    "wire_packets_per_s",
    "wire_kbps",
    "relayed_packets_per_s",
    "huddle_cpu_pct",
    "us_per_fwd_packet",
    "coturn_cpu_pct",
    "coturn_us_per_relayed_packet",
    "coturn_us_per_fwd_packet",
    "server_us_per_fwd_packet",
    "rtt_ms.median",
    "rtt_ms.p90",
    "fps_wire.min",
    "fps_decoded.min",
    "client_cpu_pct",
)
#: The ratios relay / direct (of the medians above).
RATIO_KEYS = (
    "fwd_packets_per_s",
    "wire_packets_per_s",
    "us_per_fwd_packet",
    "server_us_per_fwd_packet",
    "rtt_ms.median",
    "fps_decoded.min",
    "client_cpu_pct",
)


def _value(line: dict[str, Any], key: str) -> float | None:
    value: Any = line
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per mode the medians over its rounds; then relay / direct."""
    medians: dict[str, dict[str, float | None]] = {}
    lines: list[dict[str, Any]] = []
    for mode in MODES:
        runs = [line for line in results if line["mode"] == mode and "error" not in line]
        medians[mode] = {}
        for key in SUMMARY_KEYS:
            values = [v for line in runs if (v := _value(line, key)) is not None]
            medians[mode][key] = round(statistics.median(values), 3) if values else None
        lines.append(
            {"bench": "turn", "result": "median", "mode": mode, "rounds": len(runs)}
            | {key.replace(".", "_"): value for key, value in medians[mode].items()}
        )
    ratio: dict[str, Any] = {"bench": "turn", "result": "ratio", "of": "relay/direct"}
    for key in RATIO_KEYS:
        a, b = medians["direct"][key], medians["relay"][key]
        ratio[key.replace(".", "_")] = round(b / a, 2) if a and b is not None else None
    lines.append(ratio)
    return lines


async def drive(options: Options) -> None:
    """Every round, the modes taking turns; a JSON line each, then the summary."""
    secret = os.urandom(16).hex()
    with tempfile.TemporaryDirectory(prefix="bench-turn-") as name:
        folder = Path(name)
        frames = folder / "publisher.vp8"
        save_frames(encode_loop(options.bitrate), frames)
        # Imported here: the clients process needs none of the test harness.
        from tests.net.hosts import Network

        # Every namespace, link and process inside goes when the run ends, even on an error.
        with Network() as net:
            call = CallNetwork(net, folder, secret)
            try:
                await call.start(options.server_core)
                results = []
                for round_ in range(1, options.rounds + 1):
                    order = MODES if round_ % 2 else tuple(reversed(MODES))
                    for mode in order:
                        _progress(f"mode={mode} round={round_}")
                        line = await measure(call, mode, round_, options, frames, secret)
                        results.append(line)
                        _say(line)
                        # Let the server notice the closed sockets before the next call.
                        await asyncio.sleep(2.0)
                for line in summarize(results):
                    _say(line)
            finally:
                await call.stop()


def main(argv: list[str] | None = None) -> None:
    """The driver, or (as its child in the client namespace) the clients."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["clients"]:
        parser = argparse.ArgumentParser(prog="bench.turn clients")
        parser.add_argument("--join-url", required=True)
        parser.add_argument("--mode", choices=MODES, required=True)
        parser.add_argument("--people", type=int, required=True)
        parser.add_argument("--decoders", type=int, required=True)
        parser.add_argument("--frames", type=Path, required=True)
        parser.add_argument("--core", type=int)
        args = parser.parse_args(argv[1:])
        if args.core is not None:
            os.sched_setaffinity(0, {args.core})
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        asyncio.run(run_clients(args.join_url, args.mode, args.people, args.decoders, args.frames))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each mode")
    parser.add_argument("--people", type=int, default=4, help="participants in the call")
    parser.add_argument(
        "--decoders",
        type=int,
        default=1,
        help="participants that decode what they receive (the rest count frames on the wire)",
    )
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--bitrate", type=int, default=1_000_000, help="VP8 bit/s per publisher")
    parser.add_argument("--server-core", type=int, default=0, help="huddle and coturn")
    parser.add_argument("--client-core", type=int, default=1, help="the clients and this driver")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root: it makes network namespaces and nftables rules")
    # First thing: the clients and their threads inherit the client core; the server's are
    # moved to the server core once started.
    os.sched_setaffinity(0, {args.client_core})
    asyncio.run(
        drive(
            Options(
                rounds=args.rounds,
                people=args.people,
                decoders=min(args.decoders, args.people),
                warmup=args.warmup,
                duration=args.duration,
                bitrate=args.bitrate,
                server_core=args.server_core,
                client_core=args.client_core,
            )
        )
    )


if __name__ == "__main__":
    main()
