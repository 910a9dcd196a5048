"""Each tile says how its connection is doing, from what WebRTC reports (getStats)."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser

from tests.media.media_app import media_app
from tests.media.test_browser_call import assert_receiving, join, participant_ids

pytestmark = pytest.mark.timeout(120)

#: Bob's inbound video frame rate on Alice's page, as getStats reports it.
BOB_FPS_JS = """
async (bob) => {
  const mids = new Set(
    window.huddle.streams
      .filter((s) => s.participant === bob && s.kind === "video")
      .map((s) => s.mid),
  );
  let fps = null;
  (await window.huddle.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && mids.has(r.mid)) fps = r.framesPerSecond;
  });
  return fps;
}
"""


async def test_a_tile_shows_its_link_quality_and_the_figures_behind_it(browser: Browser) -> None:
    async with media_app() as app:
        alice = await join(browser, app.base_url, app.join_url(), "Alice")
        bob = await join(browser, app.base_url, app.join_url(), "Bob")
        ids = await participant_ids(alice)
        await assert_receiving(alice, [ids["Bob"]])
        bob_tile = alice.locator(f"[data-participant-id={ids['Bob']!r}]")
        # On loopback the link is good; the badge says so.
        await bob_tile.get_by_test_id("quality").filter(has_text="good").wait_for(timeout=20_000)
        await alice.get_by_test_id("details-button").click()
        await bob_tile.get_by_test_id("quality").filter(has_text="fps").wait_for(timeout=20_000)
        details = await bob_tile.get_by_test_id("quality").inner_text()
        assert re.search(r"loss \d+\.\d%", details) and re.search(r"\d+ kbit/s", details)
        shown = int(re.search(r"(\d+) fps", details)[1])  # type: ignore[index]
        reported = await alice.evaluate(BOB_FPS_JS, ids["Bob"])
        assert reported is not None and shown > 0 and abs(shown - reported) <= 10
        # Her own tile: the round trip to the server.
        own = alice.locator(f"[data-participant-id={ids['Alice']!r}]").get_by_test_id("quality")
        await own.filter(has_text="RTT").wait_for(timeout=20_000)
        await bob.close()
