"""Presenting a screen in real Chromium: getDisplayMedia, a second video track at the others.

Chromium's fake capture (``--use-fake-device-for-media-stream``) gives a 1280x720 screen, unlike
the 640x480 fake camera: the frame shape the others decode tells which track they got. (A
loaded machine may scale either down, so the screen is checked as 16:9 and wider than the camera.)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from playwright.async_api import Page

from tests.media.media_app import media_app
from tests.media.test_browser_call import WITHIN, assert_receiving, join, participant_ids

pytestmark = pytest.mark.timeout(180)

#: What ``viewer`` decodes of one of ``presenter``'s tracks ("video", "screen"), from getStats.
TRACK_STATS_JS = """
async ([presenter, track]) => {
  const mids = new Set(
    window.huddle.streams
      .filter((s) => s.participant === presenter && s.track === track)
      .map((s) => s.mid),
  );
  let out = null;
  (await window.huddle.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && mids.has(r.mid)) {
      out = { width: r.frameWidth, height: r.frameHeight, frames: r.framesDecoded || 0 };
    }
  });
  return out;
}
"""


def shaped(track: str, width: int, height: int) -> bool:
    """A screen is 16:9 and wider than the camera; the camera is 4:3."""
    if track == "screen":
        return width * 9 == height * 16 and width > 640
    return width * 3 == height * 4


async def decoding(viewer: Page, presenter: str, track: str) -> None:
    """``viewer`` decodes new frames of ``presenter``'s ``track``, of that track's shape."""
    deadline = time.monotonic() + WITHIN
    first: Any = None
    while True:
        now: Any = await viewer.evaluate(TRACK_STATS_JS, [presenter, track])
        if now is not None and now["width"] and shaped(track, now["width"], now["height"]):
            if first is None:
                first = now
            elif now["frames"] > first["frames"]:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{presenter}'s {track} not decoded: {now}")
        await asyncio.sleep(0.3)


async def test_two_presenters_at_once_then_one_stops(browser: Any) -> None:
    async with media_app() as app:
        alice = await join(browser, app.base_url, app.join_url(), "Alice")
        bob = await join(browser, app.base_url, app.join_url(), "Bob")
        carol = await join(browser, app.base_url, app.join_url(), "Carol")
        ids = await participant_ids(carol)
        await assert_receiving(carol, [ids["Alice"], ids["Bob"]])

        await alice.get_by_test_id("share-button").click()
        await alice.get_by_test_id("presenting-bar").wait_for()
        for viewer in (bob, carol):
            await decoding(viewer, ids["Alice"], "screen")
            await decoding(viewer, ids["Alice"], "video")  # the camera goes on
            shown = viewer.locator(f".tile.screen.shown[data-participant-id={ids['Alice']!r}]")
            await shown.wait_for()
        # Alice does not see her own screen mirrored back.
        assert await alice.get_by_test_id("screen-tile").count() == 0

        # Bob presents too, with the keyboard; Carol sees both and picks which one is large.
        await bob.locator("body").press("s")
        await decoding(carol, ids["Bob"], "screen")
        await decoding(carol, ids["Alice"], "screen")
        assert await carol.get_by_test_id("screen-tile").count() == 2
        alice_screen = carol.locator(f".tile.screen[data-participant-id={ids['Alice']!r}]")
        await alice_screen.click()
        await carol.locator(f".tile.screen.shown[data-participant-id={ids['Alice']!r}]").wait_for()

        # Alice stops: her screen leaves every page; Bob's stays.
        await alice.get_by_test_id("stop-share-button").click()
        await alice.get_by_test_id("presenting-bar").wait_for(state="hidden")
        await alice_screen.wait_for(state="detached")
        gone = await carol.evaluate(TRACK_STATS_JS, [ids["Alice"], "screen"])
        assert gone is None
        await decoding(carol, ids["Bob"], "screen")
        await carol.locator(f".tile.screen.shown[data-participant-id={ids['Bob']!r}]").wait_for()
        await assert_receiving(carol, [ids["Alice"], ids["Bob"]])
