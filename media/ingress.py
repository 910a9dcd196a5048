"""The ingress: a publisher's SRTP packet from the socket to its forwarder, in one call.

aiortc receives every datagram through aioice's queue and the DTLS transport's receive task:
``Connection.data_received`` puts it in an ``asyncio.Queue``, the task wakes on the next loop
turn, ``_recv_next`` takes it out, unprotects it, and awaits ``_handle_rtp_data``, which parses,
routes and awaits the receiver's handler. For a publisher's 170 packets a second that is most of
the server's fixed cost per publisher: a loop turn, a task step, three coroutines and a queue
per packet. An :class:`Ingress` does the same work synchronously, in the socket's read callback:
count the datagram as the transport does, unprotect it with the transport's own libsrtp session
(in a buffer of its own, through pylibsrtp's cffi handle), parse it with the transport's header
extension map, and hand it to the :class:`media.forwarding.TrackForwarder` tapping the receiver
its SSRC is routed to.

Everything else takes aiortc's path, unchanged: RTCP, DTLS, packets before the transport is
connected, SSRCs the router has not learnt yet, receivers nobody forwards, and any packet that
arrives while earlier datagrams still wait in aioice's queue (so that nothing overtakes them).

This leans on private parts of aiortc 1.16, aioice 0.13 and pylibsrtp 1.0 (tested in
``tests/media/test_ingress.py``): the DTLS transport's ``_state``, ``_rx_srtp``, ``_rtp_router``,
``_rtp_header_extensions_map`` and receive counters, aioice's ``Connection._queue``, and
pylibsrtp's ``Session._srtp`` handle with its cffi ``lib.srtp_unprotect``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

from aiortc import RTCDtlsTransport
from aiortc.rtcdtlstransport import State
from aiortc.rtp import RtpPacket
from pylibsrtp import Session
from pylibsrtp._binding import ffi, lib

from media.forwarding import TrackForwarder, forwarder_of

__all__ = ["Ingress"]

_BUFFER_SIZE = 1500
_CONNECTED = State.CONNECTED
_srtp_unprotect = lib.srtp_unprotect
#: Milliseconds from 1900-01-01 (NTP) to 1970-01-01: aiortc's ``clock.current_ms`` counts from 1900.
_NTP_UNIX_OFFSET_MS = 2208988800 * 1000

Deliver = Callable[[bytes, int], None]


class Ingress:
    """Synchronous receive path for one DTLS transport (one participant's connection).

    ``deliver`` is what the datagram would otherwise go to: aioice's ``Connection.data_received``
    (its queue, read by aiortc's receive task).
    """

    __slots__ = (
        "_cdata",
        "_dtls",
        "_length",
        "_queue",
        "_session",
        "_srtp",
        "buffer",
        "deliver",
        "packets",
    )

    def __init__(self, dtls: RTCDtlsTransport, deliver: Deliver) -> None:
        self._dtls: Any = cast(Any, dtls)
        self._queue: Any = dtls.transport._connection._queue
        self.deliver = deliver
        self._session: Session | None = None
        self._srtp: Any = None
        self._length: Any = ffi.new("int *")
        self._cdata = ffi.new("unsigned char[]", _BUFFER_SIZE)
        self.buffer: Any = ffi.buffer(self._cdata)
        #: RTP packets taken synchronously (the rest went to ``deliver``).
        self.packets = 0

    def receive(self, data: bytes, component: int) -> None:
        """One RTP or RTCP datagram (first byte 128-191) from this connection's ICE sockets."""
        dtls = self._dtls
        size = len(data)
        if (
            size < 12
            or size > _BUFFER_SIZE
            or 191 < data[1] < 224  # RTCP (RFC 5761 packet types 192-223): aiortc's path
            or dtls._state is not _CONNECTED
            or self._queue.qsize()  # earlier datagrams still queued: keep the order
        ):
            self.deliver(data, component)
            return
        session = dtls._rx_srtp
        receiver = dtls._rtp_router.ssrc_table.get(int.from_bytes(data[8:12]))
        forwarder = forwarder_of(receiver) if receiver is not None else None
        if session is None or forwarder is None:
            self.deliver(data, component)
            return
        self._take(dtls, session, forwarder, data, size)

    def _take(
        self, dtls: Any, session: Session, forwarder: TrackForwarder, data: bytes, size: int
    ) -> None:
        # As aiortc's _recv_next: counted as received before unprotecting.
        dtls._RTCDtlsTransport__rx_bytes += size
        dtls._RTCDtlsTransport__rx_packets += 1
        arrival_time_ms = int(time.time() * 1000) + _NTP_UNIX_OFFSET_MS
        if session is not self._session:
            self._session = session
            self._srtp = session._srtp[0]
        self.buffer[0:size] = data
        length = self._length
        length[0] = size
        if _srtp_unprotect(self._srtp, self._cdata, length):
            return  # forged, replayed or damaged: dropped, as aiortc drops it
        try:
            packet = RtpPacket.parse(self.buffer[0 : length[0]], dtls._rtp_header_extensions_map)
        except ValueError:
            return
        self.packets += 1
        forwarder.receive_rtp(packet, arrival_time_ms)

    @classmethod
    def of(cls, dtls: RTCDtlsTransport, deliver: Deliver) -> Ingress:
        """The ingress of ``dtls``, made on first use (audio and video of a bundle share it)."""
        ingress = getattr(dtls, "_huddle_ingress", None)
        if not isinstance(ingress, Ingress):
            ingress = cls(dtls, deliver)
            dtls._huddle_ingress = ingress  # type: ignore[attr-defined]
        return ingress
