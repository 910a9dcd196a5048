"""Malformed UDP at the media server's ICE ports (IPv4 and IPv6): dropped, never forwarded, and
every call carries on.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Any

import pytest

from tests.media.media_app import media_app
from tests.media.test_signaling import all_keep_receiving, people
from tests.media.wiretap import Wiretap

pytestmark = pytest.mark.timeout(120)

#: Rounds of the whole garbage list sent to each port.
ROUNDS = 20


def garbage() -> list[bytes]:
    """Datagrams that look like each protocol sharing the port, and like nothing at all."""
    rtp_header = struct.pack("!BBHII", 0x80, 96, 1, 1234, 0xDEADBEEF)
    return [
        b"",
        b"\x00",
        os.urandom(1200),
        # STUN: a binding request header with a bad magic cookie and a lying length.
        struct.pack("!HHI", 0x0001, 0xFFFF, 0x12345678) + os.urandom(12),
        # STUN with the right cookie and no attributes, then a truncated one.
        struct.pack("!HHI", 0x0001, 0, 0x2112A442) + os.urandom(12),
        struct.pack("!HHI", 0x0001, 8, 0x2112A442) + os.urandom(12) + b"\x00\x06",
        # DTLS record headers with junk.
        b"\x16\xfe\xfd" + os.urandom(60),
        b"\x17\xfe\xfd\x00\x01" + os.urandom(40),
        # RTP and RTCP lookalikes that fail SRTP authentication.
        rtp_header + os.urandom(200),
        struct.pack("!BBH", 0x80, 200, 6) + os.urandom(24),
        rtp_header[:5],
    ]


async def test_garbage_datagrams_to_every_server_ice_port_change_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tap = Wiretap(monkeypatch)
    async with media_app() as app, people(app, "Alice", "Bob") as clients:
        room = app.server._rooms["h1"]
        ports: set[tuple[Any, ...]] = set()
        for participant in room.participants.values():
            assert participant.pc is not None
            for transceiver in participant.pc.getTransceivers():
                ice = transceiver.receiver.transport.transport
                for protocol in ice._connection._protocols:
                    ports.add(protocol.transport.get_extra_info("sockname"))
        assert ports, "the server should be listening on ICE ports"
        sent_to: dict[tuple[Any, ...], int] = {}
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ipv4,
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as ipv6,
        ):
            for address in ports:
                # (host, port) for IPv4, (host, port, flowinfo, scope id) for IPv6.
                sock = ipv6 if ":" in address[0] else ipv4
                for _ in range(ROUNDS):
                    for datagram in garbage():
                        if sock.sendto(datagram, address) == len(datagram):
                            sent_to[address] = sent_to.get(address, 0) + 1
        # Every port got all of it, IPv6 ones included (the server offers those too).
        assert sent_to == dict.fromkeys(ports, ROUNDS * len(garbage()))

        # Every call carries on...
        await all_keep_receiving(clients)
        await all_keep_receiving(clients)
        assert app.server.stats().participants == 2
        assert all(client.pc.connectionState == "connected" for client in clients)

        # ...and nothing of the garbage was forwarded: every RTP payload a client received is
        # one a client sent (a retransmission: after its 2-byte original sequence number).
        sent = tap.sent_by(*(client.pc for client in clients))
        for client in clients:
            received = [seen.payload for seen in tap.received_by(client.pc)]
            assert len(received) > 20, f"{client.name} received too little to judge"
            strangers = [p for p in received if p not in sent and p[2:] not in sent]
            assert strangers == [], f"{client.name} got {len(strangers)} packets nobody sent"
