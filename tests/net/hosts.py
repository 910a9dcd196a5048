"""Hosts on a test network: Linux network namespaces joined by veth pairs, with nftables rules.

Every address is in 198.18.0.0/15, the range set aside for benchmarking networks (RFC 2544), and
no namespace has a route anywhere else: nothing a test sends can leave the machine. The test's own
process stays in the root namespace and reaches one host through an "admin" link of its own (a
/30 that the root namespace routes only to that veth).

    with Network() as net:
        server, client = net.host("srv"), net.host("cli")
        net.link(server, "198.18.0.1/24", client, "198.18.0.2/24")
        client.nft("table inet f { chain out { type filter hook output priority 0; udp drop } }")
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: The namespaces of one test run are named after its process, so runs can overlap.
_RUN = f"hx{os.getpid() % 100000}"
_NUMBERS = itertools.count(1)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Host:
    """One network namespace: a machine with its own interfaces, routes and firewall."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.addresses: list[str] = []

    @property
    def address(self) -> str:
        """Its first address (without the prefix length)."""
        return self.addresses[0]

    def command(self, *argv: str) -> list[str]:
        """``argv`` as run inside this host."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str, check: bool = True, stdin: str | None = None) -> str:
        """Run a command inside this host; its stdout."""
        done = subprocess.run(
            self.command(*argv), input=stdin, capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{self.name}: {shlex.join(argv)} failed: {done.stderr.strip()}")
        return done.stdout

    async def spawn(self, *argv: str, **kwargs: Any) -> asyncio.subprocess.Process:
        """Start a process inside this host."""
        return await asyncio.create_subprocess_exec(*self.command(*argv), **kwargs)

    def nft(self, ruleset: str) -> None:
        """Load an nftables ruleset into this host (adds to what is there)."""
        self.run("nft", "-f", "-", stdin=ruleset)

    def flush_firewall(self) -> None:
        """Remove every nftables rule of this host."""
        self.run("nft", "flush", "ruleset")

    def sysctl(self, setting: str) -> None:
        self.run("sysctl", "-q", "-w", setting)

    def read(self, path: str) -> str:
        """A file as seen inside this host (``/proc/net/udp`` differs per namespace)."""
        return self.run("cat", path)

    def udp_sockets(self, pid: int) -> list[tuple[str, int]]:
        """(address, port) of every UDP socket process ``pid`` holds, from ``/proc/net/udp``."""
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
        found = []
        for line in self.read("/proc/net/udp").splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                address, port = fields[1].split(":")
                octets = bytes.fromhex(address)[::-1]  # little-endian on x86 and arm
                found.append((".".join(str(b) for b in octets), int(port, 16)))
        return found

    def chromium(self, folder: Path, env: dict[str, str] | None = None) -> Path:
        """An executable that starts Debian's Chromium inside this host (for Playwright)."""
        from tests.conftest import chromium_path

        script = folder / f"chromium-in-{self.name}"
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in (env or {}).items())
        script.write_text(
            "#!/bin/sh\n"
            f"{exports}exec ip netns exec {shlex.quote(self.name)} "
            f'{shlex.quote(chromium_path())} "$@"\n'
        )
        script.chmod(0o755)
        return script


class Network:
    """Namespaces and links made for one test, all removed when it ends (even if it fails)."""

    def __init__(self) -> None:
        self.hosts: list[Host] = []
        self._root_links: list[str] = []

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def host(self, role: str, *, router: bool = False) -> Host:
        """A new namespace; a router forwards between its links."""
        host = Host(f"{_RUN}-{role}-{next(_NUMBERS)}")
        _ip("netns", "add", host.name)
        self.hosts.append(host)
        host.run("ip", "link", "set", "lo", "up")
        # IPv4 only: no link-local IPv6 candidates or router solicitations to think about.
        host.sysctl("net.ipv6.conf.all.disable_ipv6=1")
        host.sysctl("net.ipv6.conf.default.disable_ipv6=1")
        if router:
            host.sysctl("net.ipv4.ip_forward=1")
        return host

    def link(self, a: Host, a_address: str, b: Host, b_address: str) -> None:
        """A cable between ``a`` and ``b``; addresses with their prefix, like 198.18.0.1/24."""
        n = next(_NUMBERS)
        end_a, end_b = f"{_RUN}a{n}"[-15:], f"{_RUN}b{n}"[-15:]
        _ip("link", "add", end_a, "netns", a.name, "type", "veth", "peer", end_b, "netns", b.name)
        for host, end, address in ((a, end_a, a_address), (b, end_b, b_address)):
            host.run("ip", "addr", "add", address, "dev", end)
            host.run("ip", "link", "set", end, "up")
            host.addresses.append(address.split("/")[0])

    def admin_link(self, host: Host, root_address: str, host_address: str) -> None:
        """A /30 from this test's own process to ``host`` (the only route out of the root)."""
        n = next(_NUMBERS)
        end_root, end_host = f"{_RUN}r{n}"[-15:], f"{_RUN}h{n}"[-15:]
        _ip("link", "add", end_root, "type", "veth", "peer", end_host, "netns", host.name)
        self._root_links.append(end_root)
        _ip("addr", "add", f"{root_address}/30", "dev", end_root)
        _ip("link", "set", end_root, "up")
        host.run("ip", "addr", "add", f"{host_address}/30", "dev", end_host)
        host.run("ip", "link", "set", end_host, "up")
        host.addresses.append(host_address)

    def route(self, host: Host, destination: str, via: str) -> None:
        """``destination`` (a prefix or ``default``) through the router at ``via``."""
        host.run("ip", "route", "add", destination, "via", via)

    def close(self) -> None:
        """Remove every namespace (their processes must be gone) and the root's links."""
        for end in self._root_links:
            subprocess.run(["ip", "link", "del", end], capture_output=True, check=False)
        for host in self.hosts:
            # Anything still running inside is killed first, so the namespace really goes.
            pids = subprocess.run(
                ["ip", "netns", "pids", host.name], capture_output=True, text=True, check=False
            ).stdout.split()
            for pid in pids:
                subprocess.run(["kill", "-9", pid], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True, check=False)
        self.hosts.clear()
        self._root_links.clear()


@contextlib.contextmanager
def server_and_colleague(
    server: str, colleague: str, admin: str
) -> Iterator[tuple[Host, Host, Network]]:
    """The usual two hosts: a server and a colleague on one /24 (``server``, ``colleague``),
    and this process's /30 to the server, whose end there is ``admin`` (the root's end is the
    address one below)."""
    root = admin.rsplit(".", 1)[0] + "." + str(int(admin.rsplit(".", 1)[1]) - 1)
    with Network() as net:
        server_host, colleague_host = net.host("srv"), net.host("cli")
        net.link(server_host, f"{server}/24", colleague_host, f"{colleague}/24")
        net.admin_link(server_host, root, admin)
        yield server_host, colleague_host, net
