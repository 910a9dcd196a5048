"""Debian's coturn on a test host, configured by manifests/turnserver.conf.

The file is used as shipped except for the lines a deployment changes (each follows a
``# CHANGE`` comment): those get the test network's certificate, secret, realm and media address.
Addresses and ports the test network needs are given on coturn's command line.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from tests.net.hosts import Host
from tests.net.serve import ROOT

MANIFEST = ROOT / "manifests" / "turnserver.conf"


def configured(changes: dict[str, str]) -> str:
    """The manifest with each line after a ``# CHANGE`` comment replaced by ``changes[key]``."""
    lines = MANIFEST.read_text().splitlines()
    out: list[str] = []
    replace_next = False
    for line in lines:
        if replace_next and "=" in line:
            key = line.split("=", 1)[0]
            if key not in changes:
                raise KeyError(f"the test sets no value for CHANGE line {line!r}")
            line = f"{key}={changes[key]}"
            # cert= and pkey= follow one CHANGE comment together.
            replace_next = key == "cert"
        else:
            replace_next = line.startswith("# CHANGE")
        out.append(line)
    return "\n".join(out) + "\n"


class Coturn:
    """One turnserver process inside ``host``."""

    def __init__(
        self,
        host: Host,
        folder: Path,
        *,
        address: str,
        media_address: str,
        secret: str,
        cert: Path,
        key: Path,
        listen: tuple[str, ...] = (),
    ) -> None:
        self.host = host
        self.address = address
        self.listen = (address, *listen)
        self.config = folder / f"turnserver-{host.name}.conf"
        self.config.write_text(
            configured(
                {
                    "cert": str(cert),
                    "pkey": str(key),
                    "static-auth-secret": secret,
                    "realm": "turn.huddle.test",
                    "allowed-peer-ip": media_address,
                }
            )
        )
        self.log_path = folder / f"turnserver-{host.name}.log"
        self.pid_path = folder / f"turnserver-{host.name}.pid"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Coturn:
        """Start coturn and wait until it listens on UDP 3478 and TLS 443."""
        args = ["turnserver", "-c", str(self.config), "--relay-ip", self.address]
        for address in self.listen:
            args += ["--listening-ip", address]
        args += ["--log-file", "stdout", "--pidfile", str(self.pid_path), "--no-dtls"]
        with self.log_path.open("ab") as log:
            self.process = await self.host.spawn(*args, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while not self._listening():
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"coturn did not start:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.1)
        return self

    def _listening(self) -> bool:
        udp = self.host.run("ss", "-lnu", check=False)
        tcp = self.host.run("ss", "-lnt", check=False)
        return bool(
            re.search(rf"{re.escape(self.address)}:3478\b", udp)
            and re.search(rf"{re.escape(self.address)}:443\b", tcp)
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), timeout=15)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
