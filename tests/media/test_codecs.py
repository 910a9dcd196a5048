"""H264 and VP8 in one call, through the real MediaServer and its signaling, as people join it.

Alice's app publishes H264 (aiortc's encoder; a phone app or Safari would), Bob publishes VP8 (as
the web client does): everyone decodes everyone, each stream in its own codec, forwarded as is;
someone joining late starts at an H264 keyframe; and a Chromium person decodes Alice's H264.
The forwarding unit's own H264 scenario, without the server, is in test_forwarding.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from aiortc import RTCRtpSender
from playwright.async_api import Browser

from media.contrib.client import HuddleClient, SyntheticVideoTrack
from media.keyframes import is_h264_keyframe_start, is_vp8_keyframe_start
from tests.media.media_app import MediaApp, media_app
from tests.media.test_browser_call import join
from tests.media.test_signaling import WITHIN, keeps_receiving
from tests.media.wiretap import Wiretap

pytestmark = pytest.mark.timeout(120)

KEYFRAME_START = {"video/H264": is_h264_keyframe_start, "video/VP8": is_vp8_keyframe_start}


def publishing(app: MediaApp, name: str, codec: str) -> HuddleClient:
    """Someone whose video is offered in ``codec`` only (``video/H264`` or ``video/VP8``)."""
    client = HuddleClient(app.join_url(), name, publish_video=False)
    transceiver = client.pc.addTransceiver(
        SyntheticVideoTrack(320, 240, fps=15), direction="sendonly"
    )
    transceiver.setCodecPreferences(
        [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType in (codec, "video/rtx")
        ]
    )
    return client


def video_mid(client: HuddleClient, source: HuddleClient) -> str:
    assert source.you is not None
    [mid] = [
        mid
        for mid, stream in client.streams.items()
        if stream["participant"] == source.you["id"] and stream["kind"] == "video"
    ]
    return mid


def codec_of(client: HuddleClient, mid: str, payload_type: int) -> str:
    """The codec a payload type stands for on the client's transceiver ``mid``."""
    transceiver: Any = next(t for t in client.pc.getTransceivers() if t.mid == mid)
    return next(str(c.mimeType) for c in transceiver._codecs if c.payloadType == payload_type)


def video_from(tap: Wiretap, client: HuddleClient, source: HuddleClient) -> tuple[str, bool]:
    """The codec of what ``client`` got from ``source``, and whether it began at a keyframe."""
    mid = video_mid(client, source)
    packets = tap.received_by(client.pc, mid)
    assert packets, f"{client.name} got no video from {source.name}"
    codecs = {codec_of(client, mid, p.payload_type) for p in packets}
    codecs.discard("video/rtx")
    [codec] = codecs
    return codec, KEYFRAME_START[codec](packets[0].payload)


def lose_one_keyframe_request(client: HuddleClient) -> None:
    """The next PLI to ``client``'s video sender is lost; later ones get their keyframe."""
    sender: Any = next(t.sender for t in client.pc.getTransceivers() if t.kind == "video")
    send_keyframe = sender._send_keyframe

    def lost_once() -> None:
        sender._send_keyframe = send_keyframe

    sender._send_keyframe = lost_once


@asynccontextmanager
async def joined(*clients: HuddleClient) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for client in clients:
            await stack.enter_async_context(client)
            await client.join(within=WITHIN)
        yield


async def test_h264_and_vp8_publishers_decode_each_other_and_a_late_joiner_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tap = Wiretap(monkeypatch)
    async with media_app() as app:
        alice = publishing(app, "Alice", "video/H264")
        bob = publishing(app, "Bob", "video/VP8")
        async with joined(alice, bob):
            await keeps_receiving(bob, alice)
            await keeps_receiving(alice, bob)
            # Each stream keeps its codec end to end, and starts at one of its keyframes.
            assert video_from(tap, bob, alice) == ("video/H264", True)
            assert video_from(tap, alice, bob) == ("video/VP8", True)
            requests = app.server.stats().keyframe_requests

            # Carol comes late: Alice's H264 for her starts at a keyframe asked for her. Alice
            # loses the first request, so delta frames go by before the keyframe comes.
            lose_one_keyframe_request(alice)
            carol = publishing(app, "Carol", "video/VP8")
            async with joined(carol):
                await keeps_receiving(carol, alice)
                await keeps_receiving(carol, bob)
                await keeps_receiving(alice, carol)
                await keeps_receiving(bob, carol)
                assert video_from(tap, carol, alice) == ("video/H264", True)
                assert video_from(tap, carol, bob) == ("video/VP8", True)
                assert app.server.stats().keyframe_requests > requests


#: The codec and decoded frames of the inbound video from one participant, from getStats.
INBOUND_VIDEO_JS = """
async (participant) => {
  const byMid = new Map(window.huddle.streams.map((s) => [s.mid, s.participant]));
  const stats = await window.huddle.pc.getStats();
  const codecs = new Map();
  stats.forEach((r) => { if (r.type === "codec") codecs.set(r.id, r.mimeType); });
  let found = null;
  stats.forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video" && byMid.get(r.mid) === participant) {
      found = { codec: codecs.get(r.codecId) || null, frames: r.framesDecoded || 0 };
    }
  });
  return found;
}
"""


async def test_chromium_decodes_an_h264_publisher_through_the_server(browser: Browser) -> None:
    async with media_app() as app:
        alice = publishing(app, "Alice", "video/H264")
        async with joined(alice):
            assert alice.you is not None
            page = await join(browser, app.base_url, app.join_url(), "Bob")
            deadline = time.monotonic() + WITHIN
            video = None
            while video is None or video["frames"] < 10:
                assert time.monotonic() < deadline, f"Bob decodes no video from Alice: {video}"
                await asyncio.sleep(0.2)
                video = await page.evaluate(INBOUND_VIDEO_JS, alice.you["id"])
            assert video["codec"] == "video/H264", video
            # And Alice, on aiortc, decodes the browser's VP8.
            bob_id = next(iter(alice.participants))
            await alice.wait_for(
                lambda: alice.received_from(bob_id).frames_decoded >= 10, within=WITHIN
            )
