"""Hardening aiortc's ICE transport against datagrams anyone can send to the server's ports.

aioice hands every UDP datagram that is not STUN, from any address, to the DTLS transport, and
aiortc 1.16 reads ``data[0]`` first: an empty datagram raises IndexError and kills that
participant's connection. One stray (or hostile) zero-length packet must not end someone's call.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection


def drop_empty_datagrams(pc: RTCPeerConnection) -> None:
    """Make every ICE connection of ``pc`` ignore zero-length datagrams (call after it has them)."""
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport
        if transport is None:
            continue
        connection: Any = transport.transport._connection  # aioice.Connection (private)
        if getattr(connection, "_huddle_guarded", False):
            continue
        receive = connection.data_received

        def data_received(data: bytes, component: int, _receive: Any = receive) -> None:
            if data:
                _receive(data, component)

        connection.data_received = data_received
        connection._huddle_guarded = True
