"""Keyframes for the forwarding unit: where one starts in RTP, and asking publishers for one.

A subscriber can only start decoding a video stream at a keyframe, and the server never encodes,
so every keyframe comes from the publisher, on request (an RTCP PLI). Publishers may emit no
spontaneous keyframes at all (aiortc's VP8 encoder: one per 100 s), so a request that matters must
never be lost: requests from subscribers already watching are coalesced to one PLI per
:data:`PLI_MIN_INTERVAL`, while subscribers waiting for their first keyframe get a PLI at once and
again every :data:`WAITING_RETRY_INTERVAL` until a keyframe starts (less often after a few tries,
for a publisher that stopped sending video)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: At most one PLI per publisher track per this many seconds for subscribers' own PLI/FIR
#: (mediasoup uses the same second): a keyframe costs the publisher 5-10 delta frames of bitrate.
PLI_MIN_INTERVAL = 1.0

#: While a subscriber waits for its first keyframe, the PLI is repeated this often (seconds): the
#: PLI or the keyframe's first packet may have been lost, and a late joiner must see video in 1 s.
WAITING_RETRY_INTERVAL = 0.45

#: After this many unanswered retries the PLI is repeated only every
#: :data:`WAITING_BACKOFF_INTERVAL` seconds: the publisher may have stopped sending video.
WAITING_FAST_RETRIES = 4
WAITING_BACKOFF_INTERVAL = 2.0

KeyframeStartTest = Callable[[bytes], bool]


def is_vp8_keyframe_start(payload: bytes) -> bool:
    """Whether an RTP payload is the first packet of a VP8 keyframe (RFC 7741).

    The payload descriptor must start partition 0 (S=1, PID=0) and the VP8 payload header that
    follows it must have the inverse key frame flag P clear.
    """
    size = len(payload)
    if size < 2:
        return False
    first = payload[0]
    # X R N S R PID: S must be set and PID zero.
    if first & 0x17 != 0x10:
        return False
    pos = 1
    if first & 0x80:
        extension = payload[1]
        pos = 2
        if extension & 0x80:  # I: PictureID, 7 or 15 bits
            if size <= pos:
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if extension & 0x40:  # L: TL0PICIDX
            pos += 1
        if extension & 0x30:  # T or K: one byte of TID/Y/KEYIDX
            pos += 1
    return size > pos and not payload[pos] & 0x01


_H264_IDR = 5
_H264_SPS = 7
_H264_STAP_A = 24
_H264_FU_A = 28


def is_h264_keyframe_start(payload: bytes) -> bool:
    """Whether an RTP payload starts an H264 random access point (RFC 6184).

    True for an SPS (encoders send it right before an IDR picture), an IDR slice, a STAP-A holding
    either, or the first fragment of an FU-A carrying either.
    """
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type == _H264_IDR or nal_type == _H264_SPS:
        return True
    if nal_type == _H264_STAP_A:
        pos = 1
        size = len(payload)
        while pos + 2 < size:
            inner = payload[pos + 2] & 0x1F
            if inner == _H264_IDR or inner == _H264_SPS:
                return True
            pos += 2 + ((payload[pos] << 8) | payload[pos + 1])
        return False
    if nal_type == _H264_FU_A:
        if len(payload) < 2 or not payload[1] & 0x80:
            return False
        inner = payload[1] & 0x1F
        return inner == _H264_IDR or inner == _H264_SPS
    return False


def keyframe_start_test(mime_type: str) -> KeyframeStartTest | None:
    """The keyframe-start test for a video codec, or ``None`` if every packet may start a stream."""
    name = mime_type.lower()
    if name == "video/vp8":
        return is_vp8_keyframe_start
    if name == "video/h264":
        return is_h264_keyframe_start
    return None


class KeyframeRequests:
    """Decides when to send a PLI to one publisher track, so none is wasted and none is lost.

    ``send_pli`` sends one PLI upstream and returns whether it could (the publisher's SSRC may not
    be known before its first packet). ``has_waiters`` says whether a subscriber still waits for a
    keyframe; the retry timer runs only while it does.
    """

    def __init__(
        self,
        send_pli: Callable[[], bool],
        has_waiters: Callable[[], bool],
        *,
        min_interval: float = PLI_MIN_INTERVAL,
        retry_interval: float = WAITING_RETRY_INTERVAL,
        fast_retries: int = WAITING_FAST_RETRIES,
        backoff_interval: float = WAITING_BACKOFF_INTERVAL,
    ) -> None:
        self._send_pli = send_pli
        self._has_waiters = has_waiters
        self._min_interval = min_interval
        self._retry_interval = retry_interval
        self._fast_retries = fast_retries
        self._backoff_interval = backoff_interval
        self._retries = 0  # sent by the retry timer since the last keyframe or new waiter
        self._loop = asyncio.get_running_loop()
        self._last_sent: float | None = None
        # A PLI went out and no keyframe has started since: it will serve newcomers too.
        self._outstanding = False
        self._deferred: asyncio.TimerHandle | None = None
        self._retry: asyncio.TimerHandle | None = None

    def subscriber_request(self) -> None:
        """A watching subscriber sent PLI or FIR: pass it on, at most once per ``min_interval``.

        A request inside the interval is deferred to its end, never dropped, and is cancelled if a
        keyframe starts meanwhile.
        """
        now = self._loop.time()
        if self._last_sent is None or now - self._last_sent >= self._min_interval:
            self._send(now)
        elif self._deferred is None:
            self._deferred = self._loop.call_at(
                self._last_sent + self._min_interval, self._send_deferred
            )

    def waiter_added(self) -> None:
        """A subscriber started waiting for a keyframe: ask now, and keep asking until one starts.

        Skipped only while an earlier PLI is fresh and still unanswered, since its keyframe will
        serve this subscriber as well.
        """
        now = self._loop.time()
        self._retries = 0
        if not self._is_fresh(now):
            self._send(now)
        self._arm_retry(now)

    def keyframe_started(self) -> None:
        """A keyframe started: every request made before it is answered."""
        self._outstanding = False
        self._retries = 0
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None

    def close(self) -> None:
        """Cancel the timers; no PLI is sent after this."""
        for handle in (self._deferred, self._retry):
            if handle is not None:
                handle.cancel()
        self._deferred = self._retry = None
        self._send_pli = _never

    def _is_fresh(self, now: float) -> bool:
        # The small slack keeps a timer that fires a hair early from skipping its retry.
        return (
            self._outstanding
            and self._last_sent is not None
            and now - self._last_sent < self._retry_interval - 0.01
        )

    def _send(self, now: float) -> None:
        if self._send_pli():
            self._last_sent = now
            self._outstanding = True
            if self._deferred is not None:
                self._deferred.cancel()
                self._deferred = None

    def _send_deferred(self) -> None:
        self._deferred = None
        self._send(self._loop.time())

    def _arm_retry(self, now: float) -> None:
        if self._retry is not None:
            return
        base = self._last_sent if self._last_sent is not None else now
        interval = (
            self._retry_interval if self._retries < self._fast_retries else self._backoff_interval
        )
        self._retry = self._loop.call_at(max(base + interval, now + 0.05), self._retry_waiters)

    def _retry_waiters(self) -> None:
        self._retry = None
        if not self._has_waiters():
            return
        now = self._loop.time()
        if not self._is_fresh(now):
            self._retries += 1
            self._send(now)
        self._arm_retry(now)


def _never() -> bool:
    return False
