"""`huddle serve` as a user runs it: a real process, a real port, a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.conftest import free_port


async def test_huddle_serve_runs_answers_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HUDDLE_PUBLIC_URL": "http://huddle.example.test"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adapters.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path / "data"),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            # A cold start takes seconds, over 30 s with both cores busy: a generous bound.
            deadline = time.monotonic() + 120
            while True:
                assert process.returncode is None, "huddle serve exited at start"
                try:
                    async with http.get(f"{base}/healthz") as response:
                        health = await response.json()
                        break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline, "huddle serve never answered /healthz"
                    await asyncio.sleep(0.1)
            assert health["status"] == "ok" and health["database"] == "sqlite"
            async with http.post(
                f"{base}/api/chat/general/messages", json={"user": "alice", "text": "/meet Demo"}
            ) as response:
                card, _host_link = (await response.json())["posts"]
            # Links are built on HUDDLE_PUBLIC_URL, not on the address we happened to use.
            assert card["buttons"][0]["url"].startswith("http://huddle.example.test/h/")
            async with http.get(f"{base}/") as page:
                assert page.status == 200 and "huddle" in await page.text()
            # Someone opens the Join link (coming from a page that had it in its URL too).
            join = card["buttons"][0]["url"].replace("http://huddle.example.test", base)
            token = parse_qs(urlsplit(join).query)["t"][0]
            async with http.get(join, headers={"Referer": join}) as page:
                assert page.status == 200
        assert (tmp_path / "data" / "huddle.db").exists()
        assert (tmp_path / "data" / "secret").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()[-2000:]
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    messages = [line["msg"] for line in lines]
    assert any(m.startswith("serving url=http://huddle.example.test") for m in messages)
    assert any(m.startswith("huddle created id=") for m in messages)
    assert "shutting down" in messages
    # The access log has the visit, but not the link's token: the log does not let anyone in.
    [visit] = [m for m in messages if "GET /h/" in m]
    assert visit.count("t=REDACTED") == 2, visit  # the request line and the Referer
    assert token not in stderr.decode()
