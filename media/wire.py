"""The egress wire: SRTP-protect a forwarded RTP packet and hand it to the kernel, in one call.

aiortc sends RTP with ``await dtls._send_rtp(data)``, which goes through five Python layers
(``RTCDtlsTransport._send_rtp`` -> pylibsrtp ``Session.protect`` -> aioice ``Connection.send`` ->
``Connection.sendto`` -> ``StunProtocol.send_data``) before the datagram transport's ``sendto``.
For one packet copied to 64 subscribers that chain is most of the server's own (non-kernel)
time. A :class:`Wire` does the same work with no coroutine: the caller writes the plain RTP packet
into the wire's buffer, :meth:`Wire.send` encrypts it in place with the transport's libsrtp
session and writes it to the nominated ICE pair's transport. It is exactly what aiortc would
send (same SRTP session, so RTCP and retransmissions sent by aiortc stay in step), without the
layers in between.

This leans on private parts of aiortc 1.16, aioice 0.13 and pylibsrtp 1.0 (each has a test in
``tests/media/test_aiortc_internals.py``): the DTLS transport's ``_state`` and ``_tx_srtp``, the
ICE transport's ``_connection``, aioice's ``Connection._nominated`` pairs, and pylibsrtp's
``Session._srtp`` handle with its cffi ``lib.srtp_protect``.
"""

from __future__ import annotations

from asyncio import selector_events
from typing import Any, cast

from aiortc import RTCDtlsTransport
from aiortc.rtcdtlstransport import State
from pylibsrtp import Session
from pylibsrtp._binding import ffi, lib

__all__ = ["MAX_PLAIN_RTP", "Wire"]

#: Room for libsrtp's authentication tag (16 bytes for AES-GCM, 10 for HMAC-SHA1-80) and an MKI.
_TRAILER_ROOM = 32
_BUFFER_SIZE = 1500
#: The largest plain RTP packet a wire takes; anything longer is the caller's to send otherwise.
MAX_PLAIN_RTP = _BUFFER_SIZE - _TRAILER_ROOM

_ICE_COMPONENT_RTP = 1
#: asyncio's UDP transport on selector event loops (the default on Linux); private, not in stubs.
_SelectorDatagramTransport: type = selector_events._SelectorDatagramTransport  # type: ignore[attr-defined]
_srtp_protect = lib.srtp_protect
_srtp_protect_rtcp = lib.srtp_protect_rtcp
#: The attribute under which a DTLS transport keeps its wire.
_WIRE_ATTR = "_huddle_wire"
_CONNECTED = State.CONNECTED


class Wire:
    """Synchronous SRTP + UDP send for one DTLS transport (one subscriber's connection).

    Usage per packet: write the plain RTP packet into :attr:`buffer` (``pack_into`` and a slice
    assignment, no intermediate bytes), then call :meth:`send` with its length.
    """

    __slots__ = (
        "_addr",
        "_backlog",
        "_dtls",
        "_fd",
        "_length",
        "_nominated",
        "_pair",
        "_sendto",
        "_session",
        "_sock_sendto",
        "_srtp",
        "_srtp_buffer",
        "_transport",
        "buffer",
    )

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls: Any = cast(Any, dtls)
        self._session: Session | None = None
        self._srtp: Any = None
        #: aioice's nominated pairs by component; the dict lives as long as the connection.
        self._nominated: dict[int, Any] = dtls.transport._connection._nominated
        self._pair: Any = None
        self._sendto: Any = None
        self._sock_sendto: Any = None
        self._backlog: Any = None
        self._transport: Any = None
        self._fd = -1
        self._addr: tuple[str, int] = ("", 0)
        # Our own buffer (not the session's): aiortc may protect RTCP with the same session
        # between two of our packets, and each keeps its own bytes.
        self._length: Any = ffi.new("int *")
        cdata = ffi.new("unsigned char[]", _BUFFER_SIZE)
        #: The plain packet is written here; :meth:`send` encrypts it in place.
        self.buffer: Any = ffi.buffer(cdata)
        self._srtp_buffer = cdata

    @property
    def dtls(self) -> RTCDtlsTransport:
        """The transport this wire sends on."""
        return cast(RTCDtlsTransport, self._dtls)

    def send_rtcp(self, packet: bytes) -> bool:
        """Encrypt (SRTCP) and send one compound RTCP packet; False if not sent."""
        if len(packet) > MAX_PLAIN_RTP:
            return False
        self.buffer[0 : len(packet)] = packet
        return self.send(len(packet), _srtp_protect_rtcp)

    def send(self, length: int, protect: Any = _srtp_protect) -> bool:
        """Encrypt the first ``length`` bytes of :attr:`buffer` and send them; False if not sent.

        ``protect`` is libsrtp's RTP protect unless told otherwise (SRTCP, by :meth:`send_rtcp`).

        Not sent: the transport is not connected (yet, or any more), no ICE pair is nominated,
        or libsrtp refused the packet. Like UDP itself, a refused packet is simply gone; the
        subscriber's NACK or PLI repairs the stream.
        """
        dtls = self._dtls
        if dtls._state is not _CONNECTED:
            return False
        session = dtls._tx_srtp
        if session is not self._session:
            self._session = session
            self._srtp = session._srtp[0]
        pair = self._nominated.get(_ICE_COMPONENT_RTP)
        if pair is not self._pair:
            if pair is None:
                return False
            # The pair's protocol owns the UDP socket (or, for a relayed candidate, a TURN
            # allocation whose transport has the same synchronous sendto).
            self._pair = pair
            transport = pair.protocol.transport
            self._sendto = transport.sendto
            self._addr = pair.remote_addr
            # An asyncio UDP transport: write to its socket directly while it has nothing
            # queued, and leave it to the transport (which queues and waits for the socket to
            # be writable) otherwise, so that packets stay in order.
            sock = getattr(transport, "_sock", None)
            backlog = getattr(transport, "_buffer", None)
            self._transport = transport
            if isinstance(transport, _SelectorDatagramTransport) and sock is not None:
                self._sock_sendto, self._backlog, self._fd = sock.sendto, backlog, sock.fileno()
            else:
                self._sock_sendto, self._backlog, self._fd = None, None, -1
        size = self._length
        size[0] = length
        if protect(self._srtp, self._srtp_buffer, size):
            return False
        data = self.buffer[0 : size[0]]
        sock_sendto = self._sock_sendto
        if sock_sendto is None or self._backlog:
            self._sendto(data, self._addr)
        else:
            try:
                sock_sendto(data, self._addr)
            except (BlockingIOError, InterruptedError):
                self._sendto(data, self._addr)  # queued until the socket is writable
            except OSError:
                return False  # as asyncio would: the datagram is lost, the transport lives
        # The transport's own counters, which its getStats() reports.
        dtls._RTCDtlsTransport__tx_packets += 1
        dtls._RTCDtlsTransport__tx_bytes += len(data)
        return True

    def lend(self, lane: Any) -> bool:
        """Let ``lane`` (a ``media._fanout.Lane``) send as this wire just did; False if it cannot.

        Call it right after a successful :meth:`send`: the lane keeps the same session, pair,
        socket and address, and checks before every copy that they still hold.
        """
        if self._sock_sendto is None or self._pair is None or self._session is None:
            lane.drop()
            return False
        addr = self._addr
        return bool(
            lane.adopt(
                self._dtls,
                self._session,
                int(ffi.cast("uintptr_t", self._srtp)),
                self._nominated,
                self._pair,
                self._transport,
                self._backlog,
                addr,
                self._fd,
                str(addr[0]),
                int(addr[1]),
            )
        )

    @classmethod
    def of(cls, dtls: RTCDtlsTransport) -> Wire:
        """The wire of ``dtls``, made on first use (audio and video of a bundle share it)."""
        wire = getattr(dtls, _WIRE_ATTR, None)
        if not isinstance(wire, Wire):
            wire = cls(dtls)
            setattr(dtls, _WIRE_ATTR, wire)
        return wire
