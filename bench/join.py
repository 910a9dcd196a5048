"""Join to first frame in Chromium: how long a late joiner waits for video, against a floor.

A late joiner opens the join page of a call that is already running (the camera preview up, the
publishing offer gathered, as a person who typed their name), clicks Join, and the page measures
(``performance.now()``, ``getStats`` polled every 10 ms) the time until a frame of video has been
decoded from every other person in the call. It then leaves, and the next one joins. The targets,
taking turns join by join so that a busy moment hits them alike:

- ``huddle`` with 1 and with 2 people already in the call (``remotes``), through huddle's
  MediaServer in a process of its own (``bench/serve.py``): signaling over its WebSocket, media
  forwarded by the SFU;
- ``p2p``, the floor: two Chromium pages connected directly, peer to peer, no server between
  them. The joiner's offer is gathered before the click and its WebSocket to a relay (this
  process) already open; on the click it sends the offer, the other page answers, ICE and DTLS
  run between the two pages, and media flows. No SFU can be faster than that.

Every page is a tab of one headless Chromium (Debian's, with the fake camera and microphone:
640x480, 20 fps), so the floor and huddle share the browser, the machine and its load.

Output: one JSON line per target (``p50_ms``, ``p95_ms``, min, max, the samples; for huddle also
the median time from Join to each step of the page's timeline), then one per huddle target with
its ratios to ``p2p`` measured in the same run (above 1: slower than the floor).

    python -m bench.join                       # 20 late joins per target, after 2 warm-up ones
    python -m bench.join --joins 40 --remotes 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from bench.sfu import JsonLines, log_tail, stop_process
from tests.conftest import CHROMIUM_ARGS, chromium_path, new_media_context

ROOT = Path(__file__).resolve().parent.parent

#: Seconds a late joiner may take before its join counts as failed.
JOIN_TIMEOUT_S = 20

#: Wait until every one of ``expected`` remote videos has decoded a frame; the milliseconds since
#: ``t0`` (the page's clock), or null after JOIN_TIMEOUT_S.
_UNTIL_DECODING = f"""
  while (performance.now() - t0 < {JOIN_TIMEOUT_S * 1000}) {{
    const pc = pcOf();
    if (pc) {{
      const stats = await pc.getStats();
      let decoding = 0;
      stats.forEach((r) => {{
        if (r.type === "inbound-rtp" && r.kind === "video" && r.framesDecoded > 0) decoding++;
      }});
      if (decoding >= expected) return performance.now() - t0;
    }}
    await new Promise((resolve) => setTimeout(resolve, 10));
  }}
  return null;
"""

#: huddle's join page: click Join.
HUDDLE_JOIN_JS = f"""
async (expected) => {{
  const pcOf = () => window.huddle.pc;
  const t0 = performance.now();
  document.querySelector('[data-testid="join-button"]').click();
  {_UNTIL_DECODING}
}}
"""

#: The peer-to-peer page: join() sends the ready offer.
P2P_JOIN_JS = f"""
async (expected) => {{
  const pcOf = () => window.p2p.pc;
  const t0 = performance.now();
  window.p2p.join();
  {_UNTIL_DECODING}
}}
"""

#: The floor's page: ``?role=host`` stays and answers every guest; ``?role=guest`` joins it.
P2P_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>p2p floor</title></head>
<body><video id="preview" muted autoplay playsinline></video>
<video id="remote" autoplay playsinline></video>
<script>
"use strict";
const role = new URLSearchParams(location.search).get("role");
const state = { pc: null, ws: null, ready: false, join: null };
window.p2p = state;

function gathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

function connection(local) {
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle" });
  pc.addEventListener("track", (event) => {
    document.getElementById("remote").srcObject = event.streams[0];
  });
  for (const track of local.getTracks()) pc.addTrack(track, local);
  return pc;
}

async function start() {
  const video = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } };
  const local = await navigator.mediaDevices.getUserMedia({ audio: true, video });
  document.getElementById("preview").srcObject = local;
  const url = new URL("/p2p/ws", location.href);
  url.protocol = "ws:";
  url.search = new URLSearchParams({ role }).toString();
  const ws = new WebSocket(url);
  state.ws = ws;
  await new Promise((resolve) => ws.addEventListener("open", resolve));
  if (role === "host") {
    ws.addEventListener("message", async (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "offer") {
        if (state.pc) state.pc.close();
        const pc = connection(local);
        state.pc = pc;
        await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
        await pc.setLocalDescription(await pc.createAnswer());
        await gathered(pc);
        ws.send(JSON.stringify({ type: "answer", sdp: pc.localDescription.sdp }));
      } else if (message.type === "bye" && state.pc) {
        state.pc.close();
        state.pc = null;
      }
    });
  } else {
    // As huddle's page does: the offer is made and gathered before Join is clicked.
    const pc = connection(local);
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    ws.addEventListener("message", async (event) => {
      const message = JSON.parse(event.data);
      if (message.type !== "answer") return;
      await pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
    });
    state.join = () => {
      state.pc = pc;
      ws.send(JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }));
    };
  }
  state.ready = true;
}
start();
</script></body></html>
"""


class Relay:
    """Signaling for the floor: passes the guest's offer to the host and the answer back."""

    def __init__(self) -> None:
        self.host: web.WebSocketResponse | None = None
        self.guest: web.WebSocketResponse | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/p2p", self._page)
        app.router.add_get("/p2p/ws", self._socket)

    async def _page(self, _request: web.Request) -> web.Response:
        return web.Response(text=P2P_PAGE, content_type="text/html")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        host = request.query.get("role") == "host"
        if host:
            self.host = ws
        else:
            self.guest = ws
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                break
            peer = self.guest if host else self.host
            if peer is not None and not peer.closed:
                await peer.send_str(message.data)
        if not host and self.guest is ws:
            self.guest = None
            if self.host is not None and not self.host.closed:
                await self.host.send_str(json.dumps({"type": "bye"}))
        return ws


@dataclass
class Target:
    """One way of joining late, and what it measured."""

    name: str
    remotes: int
    join: Callable[[int], Awaitable[tuple[float | None, dict[str, float]]]]
    samples: list[float] = field(default_factory=list)
    failed: int = 0
    phases: dict[str, list[float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name}-{self.remotes}"


def _progress(message: str) -> None:
    print(f"[join] {message}", file=sys.stderr, flush=True)


def _emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def nearest_rank(values: list[float], q: float) -> float:
    """The ``q``-th percentile of a non-empty list, by nearest rank (p95 of 20: the 19th)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def _page(context: BrowserContext, url: str, name: str) -> Page:
    page = await context.new_page()
    page.on("pageerror", lambda error: _progress(f"{name}: page error {error}"))
    await page.goto(url, wait_until="domcontentloaded")
    return page


async def _huddle_resident(browser: Browser, base_url: str, url: str, name: str) -> Page:
    context = await new_media_context(browser, base_url)
    page = await _page(context, f"{url}&name={name}", name)
    await page.get_by_test_id("join-button").click()
    await page.get_by_test_id("leave-button").wait_for()
    return page


def huddle_joiner(
    browser: Browser, base_url: str, url: str, residents: list[Page]
) -> Callable[[int], Awaitable[tuple[float | None, dict[str, float]]]]:
    """Join ``url`` late as a new person each time; leave; wait until the others saw it."""

    async def join(number: int) -> tuple[float | None, dict[str, float]]:
        context = await new_media_context(browser, base_url)
        try:
            page = await _page(context, f"{url}&name=Late{number}", f"late {number}")
            # Ready as a person who typed their name: preview up, publishing offer gathered.
            await page.wait_for_function(
                "document.getElementById('preview').readyState >= 2"
                " && window.huddle.timeline.some(([what]) => what === 'offer ready')"
            )
            elapsed: float | None = await page.evaluate(HUDDLE_JOIN_JS, len(residents))
            timeline: list[list[Any]] = await page.evaluate("window.huddle.timeline")
            if elapsed is not None:
                await page.get_by_test_id("leave-button").click()
        finally:
            await context.close()
        joined_at = next((at for what, at in timeline if what == "join"), None)
        phases = {}
        if joined_at is not None:
            for what, at in timeline:
                if what not in ("join", "offer ready") and what not in phases:
                    phases[what] = at - joined_at
        for page in residents:
            await page.wait_for_function(
                f"window.huddle.participants.length === {len(residents)}", timeout=30000
            )
        return elapsed, phases

    return join


def p2p_joiner(
    browser: Browser, base_url: str, host: Page
) -> Callable[[int], Awaitable[tuple[float | None, dict[str, float]]]]:
    """Connect a new guest page to the host page each time; close it; wait for the host."""

    async def join(number: int) -> tuple[float | None, dict[str, float]]:
        context = await new_media_context(browser, base_url)
        try:
            page = await _page(context, f"{base_url}/p2p?role=guest", f"guest {number}")
            await page.wait_for_function("window.p2p.ready")
            elapsed: float | None = await page.evaluate(P2P_JOIN_JS, 1)
        finally:
            await context.close()
        await host.wait_for_function("window.p2p.pc === null", timeout=30000)
        return elapsed, {}

    return join


def _summary(target: Target, joins: int) -> dict[str, Any]:
    line: dict[str, Any] = {
        "bench": "join",
        "target": target.name,
        "remotes": target.remotes,
        "joins": joins,
        "failed": target.failed,
    }
    if target.samples:
        line |= {
            "p50_ms": round(nearest_rank(target.samples, 50), 1),
            "p95_ms": round(nearest_rank(target.samples, 95), 1),
            "min_ms": round(min(target.samples), 1),
            "max_ms": round(max(target.samples), 1),
            "mean_ms": round(statistics.fmean(target.samples), 1),
        }
    if target.phases:
        line["phases_p50_ms"] = {
            what: round(statistics.median(times), 1) for what, times in target.phases.items()
        }
    line["samples_ms"] = [round(sample, 1) for sample in target.samples]
    return line


async def run(
    joins: int, warmup: int, remotes: list[int], join_urls: dict[str, str]
) -> list[dict[str, Any]]:
    """Start the relay and the browser; take the joins; the result lines."""
    huddles = [f"join{n}" for n in remotes]
    app = web.Application()
    Relay().add_routes(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    relay_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        server_url = join_urls[huddles[0]].split("/h/")[0]
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            try:
                host_context = await new_media_context(browser, relay_url)
                host = await _page(host_context, f"{relay_url}/p2p?role=host", "host")
                await host.wait_for_function("window.p2p.ready")
                targets = [Target("p2p", 1, p2p_joiner(browser, relay_url, host))]
                for n, huddle in zip(remotes, huddles, strict=True):
                    url = join_urls[huddle]
                    residents = [
                        await _huddle_resident(browser, server_url, url, f"Resident{i + 1}")
                        for i in range(n)
                    ]
                    targets.append(
                        Target("huddle", n, huddle_joiner(browser, server_url, url, residents))
                    )
                for number in range(warmup + joins):
                    counted = number >= warmup
                    for target in targets:
                        elapsed, phases = await target.join(number)
                        if not counted:
                            continue
                        if elapsed is None:
                            target.failed += 1
                            _progress(f"{target.label} join {number}: no video")
                            continue
                        target.samples.append(elapsed)
                        for what, at in phases.items():
                            target.phases.setdefault(what, []).append(at)
                    if counted:
                        done = ", ".join(
                            f"{t.label} {t.samples[-1]:.0f} ms" for t in targets if t.samples
                        )
                        _progress(f"join {number - warmup + 1}/{joins}: {done}")
            finally:
                await browser.close()
    finally:
        await runner.cleanup()
    lines = [_summary(target, joins) for target in targets]
    floor = lines[0]
    for line in lines[1:]:
        if "p50_ms" in line and "p50_ms" in floor:
            lines.append(
                {
                    "bench": "join",
                    "result": "ratio",
                    "of": f"huddle-{line['remotes']}/p2p",
                    "p50": round(line["p50_ms"] / floor["p50_ms"], 2),
                    "p95": round(line["p95_ms"] / floor["p95_ms"], 2),
                }
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run, print the JSON lines; status 1 if a join failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=20, help="late joins measured per target")
    parser.add_argument("--warmup", type=int, default=2, help="joins per target not counted")
    parser.add_argument(
        "--remotes", default="1,2", help="people already in the huddle call, one target each"
    )
    args = parser.parse_args(argv)
    remotes = [int(n) for n in args.remotes.split(",")]
    started = time.monotonic()
    # huddle's server in a process of its own, as in production (and bench/sfu.py).
    serve_log = tempfile.TemporaryFile("w+")
    huddles = ",".join(f"join{n}" for n in remotes)
    serve = subprocess.Popen(
        [sys.executable, "-m", "bench.serve", "--server", "huddle", "--huddles", huddles],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=serve_log,
        text=True,
    )
    try:
        try:
            ready = JsonLines(serve).next(timeout=60)
        except (TimeoutError, RuntimeError) as exc:
            _progress(f"bench.serve: {exc}: {log_tail(serve_log)}")
            return 2
        lines = asyncio.run(run(args.joins, args.warmup, remotes, ready["join_urls"]))
    finally:
        stop_process(serve)
    for line in lines:
        _emit(line)
    _progress(f"done in {time.monotonic() - started:.0f} s")
    return 1 if any(line.get("failed") for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
