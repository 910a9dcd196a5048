"""The fan-out's lanes: one per forwarding sender, in C when ``media._fanout`` was built.

:func:`media.forwarding.TrackForwarder._forward` sends a publisher's packet to every subscriber.
With the C extension (``media/_fanout.c``, built by ``pip install``; optional) one call sends all
copies: header, SRTP protect with the subscriber's libsrtp session, ``sendto`` on the nominated
pair's socket, with no Python per copy. A :class:`Lane` is what that loop keeps per sender; it
also counts what the sender sent, whichever path sent it, for sender reports and statistics.

Without the extension, or with ``HUDDLE_FANOUT=python``, :data:`forward` is None and the lanes are
:class:`PyLane` objects: the same counters, and Python sends every copy through
:class:`media.wire.Wire`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from aiortc.rtcdtlstransport import State
from pylibsrtp._binding import ffi, lib

__all__ = ["NO_PAYLOAD_TYPE", "Lane", "PyLane", "forward", "new_lane", "payload_type_map"]

log = logging.getLogger(__name__)

#: In a lane's payload type map: this publisher payload type is not forwarded to the sender.
NO_PAYLOAD_TYPE = 255


class PyLane:
    """What a lane counts, for the Python fan-out (same attributes as ``media._fanout.Lane``)."""

    __slots__ = (
        "ntp",
        "octets",
        "packets",
        "pid",
        "ready",
        "rtp_timestamp",
        "seq",
        "tl0",
        "wire_bytes",
        "wire_packets",
    )

    def __init__(self, sender: object) -> None:
        self.ready = 0
        self.packets = 0
        self.octets = 0
        self.wire_packets = 0  # always 0: the Python path counts on the transport itself
        self.wire_bytes = 0
        self.rtp_timestamp = 0
        self.ntp = 0
        self.seq = -1
        self.pid = -1  # VP8 picture ID of the last packet sent in order, -1 if none yet
        self.tl0 = -1  # and its TL0PICIDX

    def configure(self, header: bytes, word_hi: int) -> None:
        """The C lane's header template; nothing to keep in Python."""

    def bind(
        self,
        seq_offset: int,
        ts_offset: int,
        start_seq: int,
        payload_types: bytes,
        pid_offset: int = 0,
        tl0_offset: int = 0,
    ) -> None:
        """The C lane's binding; the Python fan-out reads the binding itself."""

    def drop(self) -> None:
        """The C lane's wire; the Python fan-out has none."""


Lane: Any = PyLane
#: ``forward(lanes, payload, pt, seq, ts, marker, ext_value, ntp, in_order, pid_at, pid_long,
#: pid, tl0_at, tl0)`` in C, or None.
forward: Callable[..., tuple[int, int, int, list[int] | None]] | None = None

if os.environ.get("HUDDLE_FANOUT", "c").lower() != "python":
    try:
        from media import _fanout
    except ImportError:
        log.info("media._fanout is not built: forwarding in Python")
    else:
        _fanout.setup(
            int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect"))), State.CONNECTED
        )
        Lane = _fanout.Lane
        forward = _fanout.forward


def new_lane(sender: object) -> Any:
    """A lane for one forwarding sender (C when built)."""
    return Lane(sender)


def payload_type_map(payload_types: dict[int, int]) -> bytes:
    """A lane's map: publisher payload type -> the sender's, :data:`NO_PAYLOAD_TYPE` if none."""
    return bytes(payload_types.get(pt, NO_PAYLOAD_TYPE) & 0xFF for pt in range(128))
