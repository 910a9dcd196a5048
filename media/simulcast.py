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
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from media import vp8
from media.forwarding import (
    ForwardingStats,
    MediaKind,
    TrackForwarder,
    forwarder_of,
    forwarding_source,
)

__all__ = ["REPAIRED_RID_URI", "RID_URI", "SimulcastForwarder", "tap_simulcast"]

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"

#: Shown this many times smaller than a layer, the next smaller layer looks the same.
_GOOD_ENOUGH = 0.9


class SimulcastForwarder(TrackForwarder):
    """Forwards one rid-simulcast video track: a forwarder per layer, a layer per subscriber.

    ``rids`` are the layers as the publisher's offer lists them, smallest first (the page sends
    them so: PROTOCOL.md). ``on_change`` is called when what the layers look like changed (a
    layer's size became known) or a subscriber's switch completed: the room then reconsiders
    who gets what and what the publisher must send.
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
        self._paused: set[RTCRtpSender] = set()
        super().__init__(receiver, kind, stats)
        for rid in self.rids:
            layer = TrackForwarder(receiver, kind, stats, layer_of=self)
            layer.on_switched = self._switched
            self.layers[rid] = layer

    # -- subscribers --------------------------------------------------------------------------

    @property
    def subscribers(self) -> list[RTCRtpSender]:
        """Every sender subscribed, whichever layer it is on, paused ones too."""
        senders = dict.fromkeys(self._paused)
        for layer in self.layers.values():
            senders.update(dict.fromkeys(layer.subscribers))
        return list(senders)

    def add_subscriber(self, sender: RTCRtpSender, *, seamless: bool = False) -> None:
        """Subscribe ``sender``, on the largest layer until :meth:`choose` says otherwise."""
        if self.closed or sender in self.subscribers:
            return
        self.layers[self.rids[-1]].add_subscriber(sender, seamless=seamless)

    def remove_subscriber(self, sender: RTCRtpSender) -> None:
        """Unsubscribe ``sender`` from every layer (and any switch under way)."""
        self._paused.discard(sender)
        for layer in self.layers.values():
            layer.remove_subscriber(sender)

    def choose(self, sender: RTCRtpSender, rid: str | None) -> None:
        """Send ``sender`` layer ``rid`` from its next keyframe on (the current layer until
        then), or nothing at all (``None``: paused, say for a tile nobody can see)."""
        if sender not in self.subscribers:
            return
        if rid is None:
            for layer in self.layers.values():
                layer.remove_subscriber(sender)
            self._paused.add(sender)
            return
        self._paused.discard(sender)
        self.layers[rid].add_subscriber(sender, seamless=True)

    def layer_of(self, sender: RTCRtpSender) -> str | None:
        """The layer ``sender`` receives now (None: paused, or not subscribed)."""
        forwarder = forwarding_source(sender)
        for rid, layer in self.layers.items():
            if forwarder is layer:
                return rid
        return None

    def wanted(self) -> set[str]:
        """The layers some subscriber receives or is switching to: the ones to keep sending."""
        return {rid for rid, layer in self.layers.items() if layer.subscribers}

    def layer_for(self, height: int) -> str:
        """The smallest layer that fills a picture ``height`` device pixels high (the largest
        when none does). Before a layer's size is known, layers are taken as a quarter, a half
        and the whole of the largest."""
        known = [self.sizes.get(rid) for rid in self.rids]
        top = next((size[1] for size in reversed(known) if size is not None), 0)
        for n, rid in enumerate(self.rids):
            size = known[n]
            scale = 2 ** (len(self.rids) - 1 - n)
            layer_height = size[1] if size is not None else (top // scale if top else 0)
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
        self._paused.clear()
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
        if packet.payload_type in self._vp8:
            size = vp8.keyframe_size(packet.payload)
            if size is not None and self.sizes.get(rid) != size:
                self.sizes[rid] = size
                self._changed()
        layer._media(packet, ssrc)

    def _switched(self, sender: RTCRtpSender) -> None:
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


def tap_simulcast(
    receiver: RTCRtpReceiver, stats: ForwardingStats, rids: Sequence[str]
) -> SimulcastForwarder:
    """:func:`media.forwarding.tap_publisher` for a camera published in the layers ``rids``
    (smallest first)."""
    if forwarder_of(receiver) is not None:
        raise ValueError("receiver is already tapped")
    return SimulcastForwarder(receiver, stats, rids)
