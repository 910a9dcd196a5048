"""Malformed UDP at the media server's ICE ports: dropped, and every call carries on."""

from __future__ import annotations

import os
import socket
import struct

from tests.media.media_app import media_app
from tests.media.test_signaling import all_keep_receiving, people


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


async def test_garbage_datagrams_to_every_server_ice_port_change_nothing() -> None:
    async with media_app() as app, people(app, "Alice", "Bob") as clients:
        room = app.server._rooms["h1"]
        ports = set()
        for participant in room.participants.values():
            assert participant.pc is not None
            for transceiver in participant.pc.getTransceivers():
                ice = transceiver.receiver.transport.transport
                for protocol in ice._connection._protocols:
                    host, port = protocol.transport.get_extra_info("sockname")[:2]
                    ports.add((host, port))
        assert ports, "the server should be listening on ICE ports"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for host, port in ports:
                if ":" in host:
                    continue
                for _ in range(20):
                    for datagram in garbage():
                        sender.sendto(datagram, (host, port))
        await all_keep_receiving(clients)
        stats = app.server.stats()
        assert stats.participants == 2
        # Nothing of the garbage was forwarded as media to anyone.
        before = stats.packets_forwarded
        await all_keep_receiving(clients)
        assert app.server.stats().packets_forwarded > before
