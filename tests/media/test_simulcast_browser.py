"""Simulcast in real Chromium: each viewer decodes the layer its tile needs, a tile nobody can see
costs nothing, the publisher encodes only what somebody receives, and switches do not freeze the
picture. All from what WebRTC reports (getStats) on both sides.

Chromium's fake camera is 640x480 here, which it publishes as two layers: h (320x240) and f.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.media.media_app import media_app
from tests.media.test_browser_call import WITHIN, assert_receiving, join, participant_ids

pytestmark = pytest.mark.timeout(240)

#: What a viewer's page decodes of ``who``'s camera.
CAMERA_IN_JS = """
async (who) => {
  const mids = new Set(
    window.huddle.streams
      .filter((s) => s.participant === who && s.track === "video")
      .map((s) => s.mid),
  );
  let out = null;
  (await window.huddle.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && mids.has(r.mid)) {
      out = {
        height: r.frameHeight || 0,
        frames: r.framesDecoded || 0,
        bytes: r.bytesReceived || 0,
        keyframes: r.keyFramesDecoded || 0,
        freezes: r.freezeCount || 0,
        frozen: r.totalFreezesDuration || 0,
      };
    }
  });
  return out;
}
"""

#: What a publisher's page encodes of its camera, by layer.
LAYERS_OUT_JS = """
async () => {
  const out = {};
  (await window.huddle.pc.getStats()).forEach((r) => {
    if (r.type === "outbound-rtp" && r.kind === "video" && r.rid) {
      out[r.rid] = { active: r.active, frames: r.framesEncoded || 0 };
    }
  });
  return out;
}
"""

#: Every frame the tile of ``who`` presents, timed (requestVideoFrameCallback): the longest
#: stretch without a new picture is what a person would call a freeze.
WATCH_FRAMES_JS = """
(who) => {
  const video = document.querySelector(`.tile[data-participant-id="${who}"] video`);
  const seen = (window.__frames = []);
  const next = (now) => {
    seen.push(now);
    video.requestVideoFrameCallback(next);
  };
  video.requestVideoFrameCallback(next);
}
"""

LONGEST_GAP_JS = """
() => {
  const seen = window.__frames;
  let longest = 0;
  for (let i = 1; i < seen.length; i++) longest = Math.max(longest, seen[i] - seen[i - 1]);
  return { longest, frames: seen.length };
}
"""

BIG = {"width": 1024, "height": 720}
THUMBNAIL = {"width": 360, "height": 300}


async def set_hidden(page: Page, hidden: bool) -> None:
    """The page's tab hidden (a minimised window, another tab in front) or shown again.

    Headless Chromium keeps every page visible whatever is done to its window, so the page is
    told what a desktop browser would tell it: ``visibilityState`` and its event.
    """
    await page.evaluate(
        """(hidden) => {
          Object.defineProperty(document, "visibilityState", {
            configurable: true,
            get: () => (hidden ? "hidden" : "visible"),
          });
          document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )


async def until(page: Page, script: str, arg: Any, test: Any, what: str) -> Any:
    """Poll ``script`` until ``test`` holds for its result (generous bound), and return it."""
    deadline = time.monotonic() + WITHIN
    while True:
        value = await page.evaluate(script, arg)
        if value is not None and test(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: last {value}")
        await asyncio.sleep(0.3)


async def decoding_at(viewer: Page, who: str, height: int) -> dict[str, Any]:
    """``viewer`` decodes new frames of ``who``'s camera at ``height`` lines."""
    first = await until(
        viewer, CAMERA_IN_JS, who, lambda v: v["height"] == height, f"{who} at {height}"
    )
    return dict(
        await until(
            viewer,
            CAMERA_IN_JS,
            who,
            lambda v: v["height"] == height and v["frames"] > first["frames"] + 5,
            f"{who} decoding at {height}",
        )
    )


async def test_each_viewer_gets_the_layer_its_tile_needs_and_nobody_pays_for_unseen_ones(
    browser: Browser,
) -> None:
    async with media_app() as app:
        alice = await join(browser, app.base_url, app.join_url(), "Alice")
        bob = await join(browser, app.base_url, app.join_url(), "Bob")
        ids = await participant_ids(bob)
        await assert_receiving(bob, [ids["Alice"]])

        # Bob's big tile: the full layer; Alice's browser encodes only that one.
        await decoding_at(bob, ids["Alice"], 480)
        layers = await until(
            alice,
            LAYERS_OUT_JS,
            None,
            lambda v: v.get("f", {}).get("active") and not v.get("h", {}).get("active"),
            "only the full layer encoded",
        )
        assert set(layers) == {"h", "f"}, layers

        # Bob's window shrinks: Alice's tile is a thumbnail, he gets the small layer and
        # Alice's browser stops encoding the full one (nobody receives it).
        await bob.set_viewport_size(THUMBNAIL)
        await decoding_at(bob, ids["Alice"], 240)
        # The tile says which layer it gets; /metrics counts the switch and the bytes saved.
        badge = bob.locator(f".tile[data-participant-id={ids['Alice']!r}] [data-testid=quality]")
        await badge.and_(bob.locator("[data-details*='240p']")).wait_for(timeout=WITHIN * 1000)
        assert app.server.stats().layer_switches >= 1
        await until(
            alice,
            LAYERS_OUT_JS,
            None,
            lambda v: v["h"]["active"] and not v["f"]["active"],
            "the full layer paused",
        )
        before = await alice.evaluate(LAYERS_OUT_JS)
        await assert_receiving(bob, [ids["Alice"]])
        after = await alice.evaluate(LAYERS_OUT_JS)
        assert after["f"]["frames"] == before["f"]["frames"], "the paused layer is not encoded"

        # Bob minimises his window: nothing of Alice's video reaches him, and her browser
        # encodes no video at all.
        await set_hidden(bob, True)
        await until(
            alice,
            LAYERS_OUT_JS,
            None,
            lambda v: not v["h"]["active"] and not v["f"]["active"],
            "no layer encoded while nobody looks",
        )
        stopped = await bob.evaluate(CAMERA_IN_JS, ids["Alice"])
        assert app.server.stats().layers_paused == 1
        await assert_receiving(alice, [ids["Bob"]])  # a while, as seen from elsewhere
        still = await bob.evaluate(CAMERA_IN_JS, ids["Alice"])
        assert still["bytes"] == stopped["bytes"], (stopped, still)

        # Back on the call: the picture comes back, from a keyframe.
        await set_hidden(bob, False)
        back = await decoding_at(bob, ids["Alice"], 240)
        assert back["keyframes"] > stopped["keyframes"], (stopped, back)
        stats = app.server.stats()
        assert stats.layers_paused == 0 and stats.bytes_saved > 0, stats


async def test_switching_layers_up_and_down_never_freezes_the_picture(browser: Browser) -> None:
    async with media_app() as app:
        await join(browser, app.base_url, app.join_url(), "Alice")
        bob = await join(browser, app.base_url, app.join_url(), "Bob")
        ids = await participant_ids(bob)
        await decoding_at(bob, ids["Alice"], 480)
        start = await bob.evaluate(CAMERA_IN_JS, ids["Alice"])
        await bob.evaluate(WATCH_FRAMES_JS, ids["Alice"])
        for size, height in ((THUMBNAIL, 240), (BIG, 480), (THUMBNAIL, 240), (BIG, 480)):
            await bob.set_viewport_size(size)
            await decoding_at(bob, ids["Alice"], height)
        end = await bob.evaluate(CAMERA_IN_JS, ids["Alice"])
        watched = await bob.evaluate(LONGEST_GAP_JS)
        # The old layer goes on until the new one's keyframe: no stretch without a picture,
        # and no freeze as Chromium counts them, across four switches.
        assert watched["frames"] > 40, watched
        assert watched["longest"] <= 500, watched
        assert end["freezes"] == start["freezes"], (start, end)
        assert end["keyframes"] - start["keyframes"] >= 4, "each switch lands on a keyframe"
