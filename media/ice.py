"""The server's side of aioice's ICE connections: hardened, and quicker for media.

aioice hands every UDP datagram that is not STUN, from any address, to the DTLS transport, and
aiortc 1.16 reads ``data[0]`` first: an empty datagram raises IndexError and kills that
participant's connection. One stray (or hostile) zero-length packet must not end someone's call.
And aioice tries every datagram as STUN first, media included; media can skip that.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCDtlsTransport, RTCPeerConnection

from media.ingress import Ingress


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


def skip_stun_parsing_for_media(pc: RTCPeerConnection) -> None:
    """Hand RTP and RTCP datagrams of ``pc`` straight to its receive path (call once gathered).

    aioice runs its STUN parser on every datagram and treats the ValueError it raises as "not
    STUN": for a publisher's 170 packets a second that exception is a good part of the server's
    fixed cost per publisher. RFC 7983 demultiplexes on the first byte instead: 128-191 is RTP or
    RTCP, never STUN (0-3), so those skip the parser and go to the transport's
    :class:`media.ingress.Ingress` (a publisher's RTP straight to its forwarder, the rest to
    aioice's queue); everything else goes through aioice as is.
    """
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport
        if transport is None:
            continue
        connection: Any = transport.transport._connection  # aioice.Connection (private)

        def deliver(data: bytes, component: int, _connection: Any = connection) -> None:
            _connection.data_received(data, component)  # looked up now: it may be wrapped

        ingress = (
            Ingress.of(transport, deliver) if isinstance(transport, RTCDtlsTransport) else None
        )
        for protocol in connection._protocols:
            if getattr(protocol, "_huddle_demux", False):
                continue
            parse_as_stun = protocol.datagram_received

            def datagram_received(
                data: bytes,
                addr: tuple[str, int],
                _protocol: Any = protocol,
                _parse_as_stun: Any = parse_as_stun,
                _ingress: Ingress | None = ingress,
            ) -> None:
                if data and 127 < data[0] < 192:
                    if _ingress is not None:
                        _ingress.receive(data, _protocol.local_candidate.component)
                    else:
                        _protocol.receiver.data_received(data, _protocol.local_candidate.component)
                else:
                    _parse_as_stun(data, addr)

            protocol.datagram_received = datagram_received
            protocol._huddle_demux = True
