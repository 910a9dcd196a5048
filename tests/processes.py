"""`huddle serve` as a real subprocess, for tests that kill it (-9) and start it again."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import free_port


async def terminate(process: asyncio.subprocess.Process | None, within: float) -> None:
    """SIGTERM ``process`` and wait for it; SIGKILL if it is not gone ``within`` seconds."""
    if process is None or process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=within)
    except TimeoutError:
        process.kill()
        await process.wait()


class ServeProcess:
    """One `huddle serve` process; its stderr (JSON log lines) goes to a file.

    ``args`` are more `huddle serve` flags. With ``ca_file`` it serves HTTPS: :attr:`url` is
    https:// and requests are verified against that CA file (it may appear only once the server
    made it, as with ``--tls self-signed``). ``public_url`` is HUDDLE_PUBLIC_URL (None: :attr:`url`;
    "": not set).
    """

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        name: str = "serve",
        *,
        args: Sequence[str] = (),
        ca_file: Path | None = None,
        public_url: str | None = None,
        port: int | None = None,
    ):
        self.data_dir = data_dir
        self.env = {**os.environ, **(env or {})}
        self.name = name
        self.args = list(args)
        self.ca_file = ca_file
        self.port = port or free_port()
        self.url = f"{'https' if ca_file else 'http'}://127.0.0.1:{self.port}"
        self.public_url = self.url if public_url is None else public_url
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
            *self.args,
            env={**self.env, "HUDDLE_PUBLIC_URL": self.public_url},
            stderr=log,
        )
        log.close()
        # Generous: a loaded machine may take many seconds to import and migrate.
        deadline = asyncio.get_running_loop().time() + 60
        async with aiohttp.ClientSession() as http:
            while asyncio.get_running_loop().time() < deadline:
                if self.ca_file is None or self.ca_file.exists():
                    try:
                        async with http.get(f"{self.url}/healthz", ssl=self.ssl()) as response:
                            if response.status == 200:
                                return self
                    except aiohttp.ClientConnectionError:
                        pass
                if self.process.returncode is not None:
                    break
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} did not start:\n{self.log_path.read_text()[-3000:]}")

    def ssl(self) -> ssl.SSLContext | bool:
        """How to verify this server: against :attr:`ca_file` (True: the default checks)."""
        if self.ca_file is None:
            return True
        return ssl.create_default_context(cafile=str(self.ca_file))

    async def health(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.url}/healthz", ssl=self.ssl()) as response,
        ):
            body: dict[str, Any] = await response.json()
            return body

    def kill9(self) -> None:
        """Kill without warning: no shutdown hooks run."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM and wait (kill if it hangs)."""
        await terminate(self.process, within=15)

    async def wait_dead(self) -> None:
        assert self.process is not None
        await self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text()
