"""Slash command ack latency in HTTP mode: huddle's Slack adapter beside bare Bolt apps.

``python -m bench.commands [--rate 200] [--seconds 5] [--rounds 5]`` starts, each in its own
process:

* a fake Slack (``tests/fakes/slack.py``) for the Web API calls the product makes after each ack;
* ``huddle``: the whole product (``adapters.server.build``) in Slack HTTP mode, SQLite store;
* ``bolt-bare``: a Bolt ``AsyncApp`` on aiohttp whose `/meet` listener only acks, configured as
  huddle's is (``process_before_response=True``, ``authorize`` answered from memory);
* ``bolt-default``: the same with Bolt's defaults (``process_before_response=False``), the way
  most Bolt apps run.

It then sends signed `/meet <title>` requests at a steady rate (open loop: request *i* leaves at
``i / rate`` whatever the answers do) to each target in turn, ``--rounds`` times, and prints one
JSON line per target and round: ack latency p50/p99/max in ms, throughput, errors, the target's
CPU seconds, and ``runq_s``, the seconds its threads spent runnable but waiting for a CPU (how
busy the machine was). For huddle also ``cards_lag_s``: how long after the last ack the last card
landed, so that a fast ack never hides work falling behind, ``fake_cpu_s`` (the fake Slack's
share of the machine), and ``p99_ratio``, huddle's p99 over bolt-bare's in the same round. Then
the median of the rounds per target, and a last line comparing huddle with ``bolt-bare`` against
the goal (p99 < 50 ms at 200/s, within 1.5x), by the medians and by the per-round ratios.
For huddle every ack also starts the real work (users.info, a huddle and its card in the store,
the card sent, calls.add and the call block), which shares the event loop with the acks: that is
what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("bolt-bare", "bolt-default", "huddle")


def _emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def _progress(message: str) -> None:
    print(f"[commands] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the processes under test --------------------------------------------------------------------


async def _serve_fake() -> None:
    from tests.fakes.slack import FakeSlack

    fake = await FakeSlack().start()
    _emit({"api_url": fake.api_url})
    await asyncio.Event().wait()


async def _serve_huddle(api_url: str, data_dir: str) -> None:
    from adapters.server import build
    from bot.config import Settings
    from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET

    port = _free_port()
    settings = Settings(
        host="127.0.0.1",
        port=port,
        data_dir=Path(data_dir),
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=api_url,
    )
    parts = await build(settings)
    runner = web.AppRunner(parts.app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    _emit({"url": f"http://127.0.0.1:{port}"})
    await asyncio.Event().wait()


async def _serve_bolt(process_before_response: bool) -> None:
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.app.async_app import AsyncApp
    from slack_bolt.authorization import AuthorizeResult
    from slack_bolt.context.ack.async_ack import AsyncAck

    from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET

    async def authorize(
        enterprise_id: str | None, team_id: str | None, user_id: str | None
    ) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=BOT_TOKEN)

    app = AsyncApp(
        signing_secret=SIGNING_SECRET,
        authorize=authorize,
        process_before_response=process_before_response,
    )

    async def meet(ack: AsyncAck) -> None:
        await ack()

    app.command("/meet")(meet)

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    web_app = web.Application()
    web_app.router.add_post("/slack/events", events)
    port = _free_port()
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    _emit({"url": f"http://127.0.0.1:{port}"})
    await asyncio.Event().wait()


def serve(role: str, api_url: str, data_dir: str) -> None:
    """Run one process under test until killed; print its URL as a JSON line when ready."""
    logging.basicConfig(level=logging.WARNING)
    if role == "fake":
        asyncio.run(_serve_fake())
    elif role == "huddle":
        asyncio.run(_serve_huddle(api_url, data_dir))
    else:
        asyncio.run(_serve_bolt(process_before_response=role == "bolt-bare"))


class Child:
    """A process under test: started with ``--role``, read for its ready line, killed at the end."""

    def __init__(self, role: str, *extra: str) -> None:
        self.role = role
        self.log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.commands", "--role", role, *extra],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"{role} did not start:\n{self.log.read()[-3000:]}")
        self.ready: dict[str, Any] = json.loads(line)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def runq_seconds(self) -> float:
        """Time the process's threads have spent runnable, waiting for a CPU (schedstat)."""
        waited = 0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                waited += int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # a thread that just ended, or a kernel without schedstat
        return waited / 1e9

    def stop(self) -> str:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.seek(0)
        return self.log.read()


# -- the load --------------------------------------------------------------------------------------


def _request(number: int) -> tuple[bytes, dict[str, str]]:
    from tests.fakes.slack import command_body, sign

    fields = {
        "token": "unused",
        "team_id": "T0HUDDLE",
        "channel_id": "C0GENERAL",
        "channel_name": "general",
        "user_id": "U0ALICE",
        "user_name": "alice",
        "command": "/meet",
        "text": f"Bench {number}",
        "api_app_id": "A0HUDDLE",
        "response_url": "http://127.0.0.1:9/unused",
        "trigger_id": f"{number}.1.bench",
    }
    body = command_body(fields)
    return body, sign(body)


async def load(url: str, rate: float, seconds: float, warmup: int) -> dict[str, Any]:
    """Send ``rate * seconds`` signed `/meet` requests at a steady pace; latency of each answer."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(number: int, record: bool) -> None:
            nonlocal errors
            body, headers = _request(number)
            started = time.perf_counter()
            try:
                async with http.post(f"{url}/slack/events", data=body, headers=headers) as resp:
                    await resp.read()
                    status = resp.status
            except aiohttp.ClientError:
                errors += 1
                return
            if record:
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1

        for number in range(warmup):
            await one(-1 - number, record=False)
        total = int(rate * seconds)
        tasks = []
        start = time.perf_counter()
        for number in range(total):
            delay = start + number / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(number, record=True)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return float("nan")
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    return {
        "sent": total,
        "answered": len(latencies),
        "status": {str(k): v for k, v in sorted(statuses.items())},
        "errors": errors,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
        "throughput_per_s": round(len(latencies) / elapsed, 1),
    }


async def cards_posted(api_url: str) -> int:
    """Cards the fake Slack holds (top-level messages carrying a post key)."""
    async with aiohttp.ClientSession() as http:
        async with http.get(api_url.replace("/api/", "/_fake/stats")) as response:
            cards: int = (await response.json())["cards"]
            return cards


async def cards_lag(api_url: str, expected: int, since: float, limit: float = 120.0) -> float:
    """Seconds from ``since`` until the fake holds ``expected`` cards (the work caught up)."""
    while await cards_posted(api_url) < expected:
        if time.perf_counter() - since > limit:
            return float("inf")
        await asyncio.sleep(0.05)
    return round(time.perf_counter() - since, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="commands per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="per target and round")
    parser.add_argument("--rounds", type=int, default=5, help="targets take turns, this often")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured requests first")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--api-url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        serve(args.role, args.api_url, args.data_dir)
        return 0

    targets = args.targets.split(",")
    results: dict[str, list[dict[str, Any]]] = {target: [] for target in targets}
    with tempfile.TemporaryDirectory() as data_dir:
        fake = Child("fake")
        children: dict[str, Child] = {}
        try:
            for target in targets:
                extra = ("--api-url", fake.ready["api_url"], "--data-dir", data_dir)
                children[target] = Child(target, *extra) if target == "huddle" else Child(target)
            # Targets take turns so that a busy moment on the machine hits all of them alike.
            for round_ in range(1, args.rounds + 1):
                for target in targets:
                    child = children[target]
                    _progress(f"round {round_}: {target} at {args.rate:g}/s for {args.seconds:g} s")
                    cpu_before = child.cpu_seconds()
                    runq_before = child.runq_seconds()
                    fake_before = fake.cpu_seconds()
                    if target == "huddle":
                        cards_before = asyncio.run(cards_posted(fake.ready["api_url"]))
                    result = asyncio.run(
                        load(child.ready["url"], args.rate, args.seconds, args.warmup)
                    )
                    if target == "huddle":
                        # Acks are only half the story: every card must land too, soon after.
                        expected = cards_before + result["answered"] + args.warmup
                        result["cards_lag_s"] = asyncio.run(
                            cards_lag(fake.ready["api_url"], expected, time.perf_counter())
                        )
                        result["fake_cpu_s"] = round(fake.cpu_seconds() - fake_before, 2)
                        bare = [r for r in results.get("bolt-bare", []) if r["round"] == round_]
                        if bare and bare[0]["p99_ms"]:
                            result["p99_ratio"] = round(result["p99_ms"] / bare[0]["p99_ms"], 2)
                    result["cpu_s"] = round(child.cpu_seconds() - cpu_before, 2)
                    result["runq_s"] = round(child.runq_seconds() - runq_before, 2)
                    line = {
                        "bench": "commands",
                        "target": target,
                        "round": round_,
                        "rate": args.rate,
                        **result,
                    }
                    results[target].append(line)
                    _emit(line)
        finally:
            for target, child in children.items():
                log = child.stop()
                if any(r["answered"] < r["sent"] or r["errors"] for r in results[target]):
                    _progress(f"{target} log tail:\n{log[-2000:]}")
            fake.stop()
    medians = {
        target: {
            key: statistics.median(r[key] for r in lines)
            for key in ("p50_ms", "p99_ms", "throughput_per_s", "cpu_s", "runq_s")
        }
        for target, lines in results.items()
        if lines
    }
    for target, median in medians.items():
        _emit(
            {
                "bench": "commands",
                "target": target,
                "median_of_rounds": len(results[target]),
                "rate": args.rate,
                **median,
            }
        )
    if "huddle" in medians and "bolt-bare" in medians:
        ours, bare = medians["huddle"]["p99_ms"], medians["bolt-bare"]["p99_ms"]
        ratio = ours / bare if bare else float("nan")
        per_round = [r["p99_ratio"] for r in results["huddle"] if "p99_ratio" in r]
        _emit(
            {
                "bench": "commands",
                "summary": "huddle vs bolt-bare, median p99 of rounds",
                "rate": args.rate,
                "p99_ratio": round(ratio, 2),
                "p99_ratio_per_round": per_round,
                "median_round_ratio": round(statistics.median(per_round), 2) if per_round else None,
                "goal": "p99 < 50 ms and within 1.5x of bolt-bare",
                "goal_met": ours < 50 and ratio <= 1.5,
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
