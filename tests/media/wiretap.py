"""Every RTP packet the DTLS transports of this process send and receive, from the first one on.

aiortc's ``RTCDtlsTransport._send_rtp`` (plain RTP, just before SRTP) and ``_handle_rtp_data``
(plain RTP, just after it) are wrapped on the class for one test (``monkeypatch``), before anyone
connects, so that nothing in flight is missed. What is recorded is kept per transport; a test
picks its clients' transports with :func:`transports_of`. The server's forwarding leaves a
transport patched on the class alone (only one patched on the instance is "instrumented").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import RtpPacket, is_rtcp


@dataclass(frozen=True)
class Seen:
    """One RTP packet as a transport received it."""

    mid: str | None
    payload_type: int
    payload: bytes


class Wiretap:
    """RTP payloads sent and packets received, by transport (``id()``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: dict[int, set[bytes]] = {}
        self.received: dict[int, list[Seen]] = {}
        send_rtp: Callable[[Any, bytes], Awaitable[None]] = RTCDtlsTransport._send_rtp
        handle_rtp: Callable[[Any, bytes, int], Awaitable[None]] = RTCDtlsTransport._handle_rtp_data
        tap = self

        async def recording_send_rtp(transport: Any, data: bytes) -> None:
            if not is_rtcp(data):
                tap.sent.setdefault(id(transport), set()).add(RtpPacket.parse(data).payload)
            await send_rtp(transport, data)

        async def recording_handle_rtp(transport: Any, data: bytes, arrival_time_ms: int) -> None:
            try:
                packet = RtpPacket.parse(data, transport._rtp_header_extensions_map)
                seen = Seen(packet.extensions.mid, packet.payload_type, packet.payload)
            except ValueError:  # unparsable after SRTP: kept whole (nobody sent that)
                seen = Seen(None, -1, data)
            tap.received.setdefault(id(transport), []).append(seen)
            await handle_rtp(transport, data, arrival_time_ms)

        monkeypatch.setattr(RTCDtlsTransport, "_send_rtp", recording_send_rtp)
        monkeypatch.setattr(RTCDtlsTransport, "_handle_rtp_data", recording_handle_rtp)

    def sent_by(self, *pcs: RTCPeerConnection) -> set[bytes]:
        """Every RTP payload the connections sent."""
        return set().union(*(self.sent.get(t, set()) for pc in pcs for t in transports_of(pc)))

    def received_by(self, pc: RTCPeerConnection, mid: str | None = None) -> list[Seen]:
        """Every RTP packet the connection received (on ``mid`` only, if given), in order."""
        return [
            seen
            for t in transports_of(pc)
            for seen in self.received.get(t, [])
            if mid is None or seen.mid == mid
        ]


def transports_of(pc: RTCPeerConnection) -> set[int]:
    """The DTLS transports of a connection (one, when bundled)."""
    return {id(t.receiver.transport) for t in pc.getTransceivers()}
