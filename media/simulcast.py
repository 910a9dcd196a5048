"""Simulcast: a publisher's camera in several layers, and each viewer sent the one it shows.

A browser publishes its camera as rid simulcast (``../shared/research/simulcast.md``): one RTP
stream per layer ("q", "h", "f": a quarter, half and full size), each with its own SSRC, on one
m-line. aiortc neither answers nor parses that by itself; :mod:`media.sdp` munges the answer
(:func:`media.sdp.with_simulcast`) and this module takes the packets apart.

A :class:`SimulcastForwarder` taps the publisher's receiver like any :class:`TrackForwarder`
(RTCP statistics, one REMB estimate for all layers, RTX unwrapping), learns which SSRC is which
layer from the rid header extension of each stream's first packets (Chromium stops sending it once
it gets a receiver report), and hands each layer's packets to that layer's own forwarder. A
subscriber's sender is bound to one layer at a time; :meth:`SimulcastForwarder.choose` moves it
seamlessly (the old layer goes on until the new one's keyframe; sequence numbers, timestamps and
VP8 picture IDs continue) or pauses it (nothing forwarded). Which layer a viewer gets is the
room's choice (:meth:`layer_for` helps); which layers anybody gets is what the publisher is told
to keep sending (:meth:`wanted`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
)
from aiortc.rtp import RtpPacket

from media import vp8
from media.forwarding import (
    ForwardingStats,
    MediaKind,
    TrackForwarder,
    forwarder_of,
    forwarding_source,
)
from media.sdp import REPAIRED_RID_URI, RID_URI

__all__ = ["REPAIRED_RID_URI", "RID_URI", "SimulcastForwarder", "tap_simulcast"]


#: Shown this many times smaller than a layer, the next smaller layer looks the same.
_GOOD_ENOUGH = 0.9

#: A layer that sent nothing for this long has stopped (the browser dropped it, short of
#: bandwidth or CPU): its viewers get the best layer still coming meanwhile.
STALE_SECONDS = 2.0


class SimulcastForwarder(TrackForwarder):
    """Forwards one rid-simulcast video track: a forwarder per layer, a layer per subscriber.

    ``rids`` are the layers as the publisher's offer lists them, smallest first (the page sends
    them so: PROTOCOL.md). ``on_change`` is called when what the layers look like changed (a
    layer's size became known): the room then reconsiders who gets what.
    """

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        stats: ForwardingStats,
        rids: Sequence[str],
        kind: MediaKind = "video",
    ) -> None:
        if not rids:
            raise ValueError("simulcast needs at least one layer")
        self.rids: tuple[str, ...] = tuple(rids)
        self.layers: dict[str, TrackForwarder] = {}
        self.on_change: Callable[[], None] | None = None
        #: Each layer's frame size, from its keyframes.
        self.sizes: dict[str, tuple[int, int]] = {}
        self._rid_of_ssrc: dict[int, str] = {}
        self._ssrc_of_rid: dict[str, int] = {}
        #: RTX streams whose layer is known but not yet that layer's media SSRC.
        self._rtx_waiting: dict[int, str] = {}
        #: The layer the room chose for each subscriber (None: paused).
        self._desired: dict[RTCRtpSender, str | None] = {}
        #: Packets per layer, and (that count, when it last moved) at the last :meth:`tick`.
        self._counts: dict[str, int] = dict.fromkeys(rids, 0)
        self._moved: dict[str, tuple[int, float]] = {}
        #: The layers that sent lately; empty until :meth:`tick` first saw one.
        self._alive: set[str] = set()
        super().__init__(receiver, kind, stats)
        for rid in self.rids:
            layer = TrackForwarder(receiver, kind, stats, layer_of=self)
            layer.on_switched = self._switched
            self.layers[rid] = layer

    # -- subscribers --------------------------------------------------------------------------

    @property
    def subscribers(self) -> list[RTCRtpSender]:
        """Every sender subscribed, whichever layer it is on, paused ones too."""
        return list(self._desired)

    def add_subscriber(self, sender: RTCRtpSender, *, seamless: bool = False) -> None:
        """Subscribe ``sender``, on the largest layer until :meth:`choose` says otherwise."""
        if self.closed or sender in self._desired:
            return
        self._desired[sender] = self.rids[-1]
        target = self._effective(self.rids[-1])
        self.layers[target or self.rids[-1]].add_subscriber(sender, seamless=seamless)

    def remove_subscriber(self, sender: RTCRtpSender) -> None:
        """Unsubscribe ``sender`` from every layer (and any switch under way)."""
        self._desired.pop(sender, None)
        for layer in self.layers.values():
            layer.remove_subscriber(sender)

    def choose(self, sender: RTCRtpSender, rid: str | None) -> None:
        """Send ``sender`` layer ``rid`` from its next keyframe on (the current layer until
        then), or nothing at all (``None``: paused, say for a tile nobody can see). While
        ``rid`` is not coming (the browser dropped it), the best layer that is stands in."""
        if sender not in self._desired or (rid is not None and rid not in self.layers):
            return
        self._desired[sender] = rid
        self._apply(sender)

    def tick(self, now: float) -> None:
        """See which layers are coming (call every few hundred ms): viewers of a layer that
        stopped move to one still coming, and back once it comes again."""
        for rid, count in self._counts.items():
            last = self._moved.get(rid)
            if last is None or last[0] != count:
                self._moved[rid] = (count, now)
                if count:
                    self._alive.add(rid)
            elif now - last[1] >= STALE_SECONDS:
                self._alive.discard(rid)
        for sender in list(self._desired):
            self._apply(sender)

    def _effective(self, rid: str | None) -> str | None:
        """``rid`` if it is coming (or nothing is known yet), else the largest layer below it
        that is, else the smallest above it."""
        if rid is None or not self._alive or rid in self._alive:
            return rid
        at = self.rids.index(rid)
        below = [r for r in self.rids[:at] if r in self._alive]
        if below:
            return below[-1]
        above = [r for r in self.rids[at + 1 :] if r in self._alive]
        return above[0] if above else rid

    def _apply(self, sender: RTCRtpSender) -> None:
        target = self._effective(self._desired.get(sender))
        if target is None:
            for layer in self.layers.values():
                layer.remove_subscriber(sender)
            return
        # Idempotent: a switch to the same layer goes on; back to the current one calls it off.
        self.layers[target].add_subscriber(sender, seamless=True)

    def layer_of(self, sender: RTCRtpSender) -> str | None:
        """The layer ``sender`` receives now (None: paused, or not subscribed)."""
        forwarder = forwarding_source(sender)
        for rid, layer in self.layers.items():
            if forwarder is layer:
                return rid
        return None

    @property
    def paused(self) -> int:
        """Subscribers sent nothing now (their tile is not seen)."""
        return sum(rid is None for rid in self._desired.values())

    def wanted(self) -> set[str]:
        """The layers some subscriber receives, is switching to, or was chosen for: the ones
        the publisher must keep sending."""
        bound = {rid for rid, layer in self.layers.items() if layer.subscribers}
        return bound | {rid for rid in self._desired.values() if rid is not None}

    def layer_for(self, height: int) -> str:
        """The smallest layer that fills a picture ``height`` device pixels high (the largest
        when none does). Before a layer's size is known, layers are taken as a quarter, a half
        and the whole of the largest."""
        known = [self.sizes.get(rid) for rid in self.rids]
        # A layer not seen yet: twice the size of the one below it (as the page sends them).
        at, height_at = next(
            ((n, size[1]) for n, size in enumerate(known) if size is not None), (0, 0)
        )
        for n, rid in enumerate(self.rids):
            size = known[n]
            scaled = height_at * 2**n // 2**at
            layer_height = size[1] if size is not None else scaled
            if layer_height and layer_height >= height * _GOOD_ENOUGH:
                return rid
            if not layer_height and height <= 180 * (2**n):
                return rid  # nothing known yet: a thumbnail gets the smallest
        return self.rids[-1]

    def request_keyframe(self) -> None:
        """Ask for a keyframe of every layer someone receives."""
        for layer in self.layers.values():
            if layer.subscribers:
                layer.request_keyframe()

    def close(self) -> None:
        """The publisher left: every layer's subscribers are detached."""
        for layer in self.layers.values():
            layer.close()
        self._desired.clear()
        super().close()

    # -- ingress ------------------------------------------------------------------------------

    def _learn_codecs(self, codecs: list[RTCRtpCodecParameters]) -> None:
        super()._learn_codecs(codecs)
        for layer in getattr(self, "layers", {}).values():
            layer._learn_codecs(codecs)

    def _take(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        ssrc = packet.ssrc
        if ssrc not in self._rid_of_ssrc and ssrc not in self._rtx_ssrc:
            self._learn(packet)
        super()._take(packet, arrival_time_ms)

    def _learn(self, packet: RtpPacket) -> None:
        """Which layer a new SSRC is, from the rid (or repaired rid) its first packets carry."""
        extensions: Any = packet.extensions
        ssrc = packet.ssrc
        rid = extensions.rtp_stream_id
        if rid in self.layers:
            self._rid_of_ssrc[ssrc] = rid
            self._ssrc_of_rid[rid] = ssrc
            for rtx, of in list(self._rtx_waiting.items()):
                if of == rid:
                    self._rtx_ssrc[rtx] = ssrc
                    del self._rtx_waiting[rtx]
            return
        repaired = extensions.repaired_rtp_stream_id
        if repaired in self.layers:
            media = self._ssrc_of_rid.get(repaired)
            if media is not None:
                self._rtx_ssrc[ssrc] = media
            else:
                self._rtx_waiting[ssrc] = repaired

    def _media(self, packet: RtpPacket, ssrc: int) -> None:
        rid = self._rid_of_ssrc.get(ssrc)
        layer = self.layers.get(rid) if rid is not None else None
        if rid is None or layer is None:
            self.stats.packets_dropped += 1  # a stream never named: cannot be placed
            return
        self._counts[rid] += 1
        if rid == self.rids[-1]:
            # What the others would have cost at full size, for /metrics.
            self.stats.bytes_saved += len(packet.payload) * (
                len(self._desired) - len(layer._active)
            )
        if packet.payload_type in self._vp8:
            size = vp8.keyframe_size(packet.payload)
            if size is not None and self.sizes.get(rid) != size:
                self.sizes[rid] = size
                self._changed()
        layer._media(packet, ssrc)

    def _switched(self, sender: RTCRtpSender) -> None:
        # What the publisher must send follows on the room's next tick (Room._dynacast).
        self.stats.layer_switches += 1

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


def tap_simulcast(
    receiver: RTCRtpReceiver,
    stats: ForwardingStats,
    rids: Sequence[str],
    extension_ids: dict[str, int],
) -> SimulcastForwarder:
    """:func:`media.forwarding.tap_publisher` for a camera published in the layers ``rids``
    (smallest first), whose offer numbered its header extensions ``extension_ids``.

    The connection's transport learns the rid extensions' IDs at once. aiortc configures its
    (one, bundled) extension map only when a receiver starts, from the transceiver's list, which
    its own ``createOffer`` resets; a layer whose first packets were parsed without the rid is
    never known, since the browser stops sending the rid once it gets a receiver report.
    """
    if forwarder_of(receiver) is not None:
        raise ValueError("receiver is already tapped")
    transport: Any = receiver.transport
    transport._rtp_header_extensions_map.configure(
        RTCRtpReceiveParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=extension_ids[uri], uri=uri)
                for uri in (RID_URI, REPAIRED_RID_URI)
                if uri in extension_ids
            ]
        )
    )
    return SimulcastForwarder(receiver, stats, rids)
