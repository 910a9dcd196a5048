"""`huddle serve` as a real subprocess, for tests that kill it (-9) and start it again."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import free_port


class ServeProcess:
    """One `huddle serve` process; its stderr (JSON log lines) goes to a file."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, name: str = "serve"):
        self.data_dir = data_dir
        self.env = {**os.environ, **(env or {})}
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"{name}-{self.port}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> ServeProcess:
        """Start and wait until /healthz answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adapters.cli",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            env={**self.env, "HUDDLE_PUBLIC_URL": self.url},
            stderr=log,
        )
        log.close()
        async with aiohttp.ClientSession() as http:
            for _ in range(150):
                try:
                    async with http.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientConnectionError:
                    pass
                if self.process.returncode is not None:
                    break
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} did not start:\n{self.log_path.read_text()[-3000:]}")

    async def health(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/healthz") as response:
            body: dict[str, Any] = await response.json()
            return body

    def kill9(self) -> None:
        """Kill without warning: no shutdown hooks run."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM and wait (kill if it hangs)."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout=15)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    async def wait_dead(self) -> None:
        assert self.process is not None
        await self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text()
