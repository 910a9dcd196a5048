"""Where the media server's UDP sockets live and which addresses it tells browsers to use.

aioice binds each ICE socket to a random port on every interface and advertises only those
interface addresses. A server behind a firewall needs its sockets in one port range the firewall
opens (``HUDDLE_UDP_PORTS``); a server behind 1:1 NAT (a cloud VM) must also advertise the public
address that reaches those same sockets (``HUDDLE_PUBLIC_IP``). :class:`MediaNetwork` does both for
the server's own peer connections, by replacing host-candidate gathering on each of them (never
globally: the test clients in the same process use aiortc too).

A public address is advertised as a server-reflexive candidate of each host socket (as if a STUN
server had reported it), so browsers on the LAN still use the host address and the rest use the
public one; the NAT forwards their checks to the same socket.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aioice import turn
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import StunProtocol, server_reflexive_candidate
from aiortc import RTCPeerConnection

log = logging.getLogger(__name__)

#: Seconds to wait for a STUN server's answer while gathering (aioice's default).
STUN_TIMEOUT = 5.0


class NetworkConfigError(ValueError):
    """A network setting cannot be used; ``str(error)`` says what would work."""


class PortsExhausted(OSError):
    """Every port of the configured UDP range is taken on an address."""


@dataclass(frozen=True)
class PortRange:
    """An inclusive range of UDP ports, as in ``HUDDLE_UDP_PORTS=40000-40199``."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if not 1024 <= self.first <= self.last <= 65535:
            raise NetworkConfigError(
                f"UDP ports {self.first}-{self.last}: give a range within 1024-65535, "
                "like 40000-40199"
            )

    @classmethod
    def parse(cls, text: str, name: str = "HUDDLE_UDP_PORTS") -> PortRange:
        """``"40000-40199"`` (or one port, ``"40000"``)."""
        first, _, last = text.strip().partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError as exc:
            raise NetworkConfigError(
                f"{name} must be a port range like 40000-40199, got {text!r}"
            ) from exc
        return cls(low, high)

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


def parse_public_ips(text: str, name: str = "HUDDLE_PUBLIC_IP") -> tuple[str, ...]:
    """``"203.0.113.7, 2001:db8::7"`` -> the addresses, checked (names are not addresses)."""
    found: list[str] = []
    for part in text.replace(",", " ").split():
        try:
            found.append(str(ipaddress.ip_address(part)))
        except ValueError as exc:
            raise NetworkConfigError(
                f"{name} must be IP addresses separated by commas, got {part!r}"
            ) from exc
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class MediaNetwork:
    """The server side of ICE: port range and public addresses (both optional)."""

    public_ips: tuple[str, ...] = ()
    udp_ports: PortRange | None = None
    #: Test hook: picks the order in which ports of the range are tried.
    shuffle: Callable[[list[int]], None] = field(default=random.shuffle, compare=False)

    @property
    def default(self) -> bool:
        """Nothing configured: aioice's own gathering is used as is."""
        return not self.public_ips and self.udp_ports is None

    def apply(self, pc: RTCPeerConnection) -> None:
        """Make ``pc``'s ICE gathering follow this network (call before it gathers)."""
        if self.default:
            return
        gather: Callable[[], Awaitable[None]] = pc._RTCPeerConnection__gather  # type: ignore[attr-defined]

        async def gather_here() -> None:
            # Every ICE transport pc has by now (one with max-bundle), however it was made.
            for transport in pc._RTCPeerConnection__iceTransports:  # type: ignore[attr-defined]
                connection = transport.iceGatherer._connection
                if not getattr(connection, "_huddle_network", False):
                    connection.get_component_candidates = _Gatherer(self, connection)
                    connection._huddle_network = True
            await gather()

        pc._RTCPeerConnection__gather = gather_here  # type: ignore[attr-defined]

    def bind(self, address: str) -> socket.socket:
        """A UDP socket on ``address``, on a free port of the range (any port without one)."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        if self.udp_ports is None:
            return _bound(family, address, 0)
        ports = list(range(self.udp_ports.first, self.udp_ports.last + 1))
        self.shuffle(ports)
        for port in ports:
            try:
                return _bound(family, address, port)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
        raise PortsExhausted(
            errno.EADDRINUSE,
            f"all {len(self.udp_ports)} UDP ports of {self.udp_ports} are in use on {address}: "
            "widen HUDDLE_UDP_PORTS (each participant needs one port per address)",
        )

    def public_for(self, host: str) -> list[str]:
        """The public addresses to advertise for a socket on ``host`` (same IP version)."""
        version = ipaddress.ip_address(host.split("%")[0]).version
        return [ip for ip in self.public_ips if ipaddress.ip_address(ip).version == version]


def _bound(family: int, address: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, turn.UDP_SOCKET_BUFFER_SIZE)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


class _Gatherer:
    """Stands in for ``aioice.Connection.get_component_candidates`` on one connection."""

    def __init__(self, network: MediaNetwork, connection: Any) -> None:
        self.network = network
        self.connection = connection

    async def __call__(
        self,
        component: int,
        addresses: list[str],
        timeout: float = STUN_TIMEOUT,  # noqa: ASYNC109 (aioice's signature)
    ) -> list[Candidate]:
        loop = asyncio.get_running_loop()
        connection = self.connection
        candidates: list[Candidate] = []
        protocols: list[StunProtocol] = []
        for address in addresses:
            try:
                sock = self.network.bind(address)
            except PortsExhausted as exc:
                log.error("media_ports_exhausted address=%s error=%s", address, exc.strerror)
                continue
            except OSError as exc:
                log.info("media_bind_failed address=%s error=%s", address, exc)
                continue
            _, protocol = await loop.create_datagram_endpoint(
                lambda: StunProtocol(connection), sock=sock
            )
            host, port = protocol.transport.get_extra_info("sockname")[:2]
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", host),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=host,
                port=port,
                type="host",
            )
            candidates.append(protocol.local_candidate)
            protocols.append(protocol)
        if not protocols and addresses:
            raise PortsExhausted(errno.EADDRINUSE, "no media socket could be opened")
        connection._protocols += protocols
        for protocol in protocols:
            local = protocol.local_candidate
            for public in self.network.public_for(local.host):
                candidates.append(
                    Candidate(
                        foundation=candidate_foundation("srflx", "udp", local.host),
                        component=component,
                        transport="udp",
                        priority=candidate_priority(component, "srflx"),
                        host=public,
                        port=local.port,
                        type="srflx",
                        related_address=local.host,
                        related_port=local.port,
                    )
                )
        if connection.stun_server and not self.network.public_ips:
            # As aioice does: ask a STUN server what the world sees (IPv4 only).
            tasks = [
                asyncio.create_task(server_reflexive_candidate(p, connection.stun_server))
                for p in protocols
                if ipaddress.ip_address(p.local_candidate.host).version == 4
            ]
            if tasks:
                done, pending = await asyncio.wait(tasks, timeout=timeout)
                candidates += [t.result()[0] for t in done if t.exception() is None]
                for task in pending:
                    task.cancel()
        return candidates
