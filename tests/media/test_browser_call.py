"""Real headless Chromium in a huddle: three people call, one leaves, one joins late on a phone.

Everything is asserted on what WebRTC reports (``getStats`` through ``window.huddle.pc``), mapped to
people through the ``streams`` the server sent, not on HTML alone. How long the late joiner waits
for video is measured in ``bench/join.py``, not asserted here: a loaded machine is slow, not wrong.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.conftest import new_media_context
from tests.media.media_app import media_app

pytestmark = pytest.mark.timeout(180)

#: Seconds any awaited outcome may take: generous, so that a loaded machine is slow, not red.
WITHIN = 20.0

#: Per remote participant: decoded video frames and received audio bytes (inbound-rtp by mid).
RECEIVED_JS = """
async () => {
  const byMid = new Map(window.huddle.streams.map((s) => [s.mid, s.participant]));
  const out = {};
  if (!window.huddle.pc) return out; // between two connections (reconnecting)
  const stats = await window.huddle.pc.getStats();
  stats.forEach((r) => {
    if (r.type !== "inbound-rtp" || !byMid.has(r.mid)) return;
    const who = byMid.get(r.mid);
    out[who] = out[who] || { frames: 0, audioBytes: 0 };
    if (r.kind === "video") out[who].frames += r.framesDecoded || 0;
    if (r.kind === "audio") out[who].audioBytes += r.bytesReceived || 0;
  });
  return out;
}
"""


async def open_join_page(
    browser: Browser, base_url: str, url: str, name: str, *, name_in_link: bool = False
) -> Page:
    context = await new_media_context(browser, base_url)
    page = await context.new_page()
    page.on("console", lambda m: print(f"[{name} console.{m.type}] {m.text}"))
    page.on("pageerror", lambda e: print(f"[{name} pageerror] {e}"))
    await page.goto(f"{url}&name={name}" if name_in_link else url, wait_until="domcontentloaded")
    if name_in_link:
        assert await page.get_by_test_id("name-input").input_value() == name
    else:
        await page.get_by_test_id("name-input").fill(name)
    # A person sees their preview before clicking Join; so does the test.
    await page.wait_for_function("document.getElementById('preview').readyState >= 2")
    return page


async def join(browser: Browser, base_url: str, url: str, name: str) -> Page:
    page = await open_join_page(browser, base_url, url, name)
    await page.get_by_test_id("join-button").click()
    await page.get_by_test_id("leave-button").wait_for()
    return page


async def received(page: Page) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = await page.evaluate(RECEIVED_JS)
    return result


async def participant_ids(page: Page) -> dict[str, str]:
    everyone: list[dict[str, Any]] = await page.evaluate("window.huddle.participants")
    return {p["name"]: p["id"] for p in everyone}


async def assert_receiving(page: Page, senders: list[str], within: float = WITHIN) -> None:
    """Video frames decoded and audio bytes received keep growing from each of ``senders``."""
    deadline = time.monotonic() + within
    before = await received(page)
    while True:
        await asyncio.sleep(0.5)
        after = await received(page)
        growing = [
            who
            for who in senders
            if who in after
            and after[who]["frames"] > before.get(who, {}).get("frames", 0)
            and after[who]["audioBytes"] > before.get(who, {}).get("audioBytes", 0)
        ]
        if len(growing) == len(senders):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not receiving from all of {senders}: {before} -> {after}")
        before = after


async def tile_count(page: Page) -> int:
    return await page.get_by_test_id("participant").count()


async def test_three_people_call_one_leaves_a_late_phone_joiner_sees_and_hears_both_others(
    browser: Browser,
) -> None:
    async with media_app() as app:
        url = app.join_url("h1")
        alice = await join(browser, app.base_url, url, "Alice")
        bob = await join(browser, app.base_url, url, "Bob")
        carol = await join(browser, app.base_url, url, "Carol")
        ids = await participant_ids(carol)
        assert set(ids) == {"Alice", "Bob", "Carol"}

        # Everyone sees and hears the other two.
        await assert_receiving(alice, [ids["Bob"], ids["Carol"]])
        await assert_receiving(bob, [ids["Alice"], ids["Carol"]])
        await assert_receiving(carol, [ids["Alice"], ids["Bob"]])
        for page in (alice, bob, carol):
            assert await tile_count(page) == 3
        assert app.server.stats().participants == 3

        # Bob leaves; Alice and Carol carry on with two tiles.
        await bob.get_by_test_id("leave-button").click()
        await bob.get_by_test_id("notice").wait_for()
        for page in (alice, carol):
            await page.wait_for_function(
                "document.querySelectorAll('[data-testid=participant]').length === 2"
            )
        await assert_receiving(alice, [ids["Carol"]])
        await assert_receiving(carol, [ids["Alice"]])

        # Dave joins late, on a phone-sized screen: he decodes video from both others, and
        # hears them.
        dave = await open_join_page(browser, app.base_url, url, "Dave", name_in_link=True)
        await dave.set_viewport_size({"width": 390, "height": 844})
        await dave.get_by_test_id("join-button").click()
        await dave.get_by_test_id("leave-button").wait_for()
        ids = await participant_ids(dave)
        await assert_receiving(dave, [ids["Alice"], ids["Carol"]])
        await assert_receiving(alice, [ids["Carol"], ids["Dave"]])

        # The phone layout: all three tiles and every control on screen, nothing scrolled away.
        await dave.wait_for_function(
            "document.querySelectorAll('[data-testid=participant]').length === 3"
        )
        viewport = {"width": 390, "height": 844}
        for tile in await dave.get_by_test_id("participant").all():
            box = await tile.bounding_box()
            assert box is not None and box["width"] >= 150, box
            assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 1, box
            assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"] + 1, box
        for test_id in ("mute-button", "camera-button", "leave-button"):
            button = dave.get_by_test_id(test_id)
            assert await button.is_visible()
            box = await button.bounding_box()
            assert box is not None and box["y"] + box["height"] <= viewport["height"] + 1, box

        # Mute and camera off reach the others.
        await dave.get_by_test_id("mute-button").click()
        await dave.get_by_test_id("camera-button").click()
        dave_off = f"p => p.id === '{ids['Dave']}' && !p.audio && !p.video"
        await alice.wait_for_function(f"window.huddle.participants.some({dave_off})")

        # The host ends the huddle: everyone is told, in words, and so is Eve, who had the
        # join page open but clicks Join only afterwards.
        eve = await open_join_page(browser, app.base_url, url, "Eve")
        await app.server.end_huddle("h1", "the host ended it")
        for page in (alice, carol, dave):
            notice = page.get_by_test_id("notice")
            await notice.wait_for()
            assert await notice.text_content() == "The huddle ended: the host ended it."
        await eve.get_by_test_id("join-button").click()
        notice = eve.get_by_test_id("notice")
        await notice.wait_for()
        assert await notice.text_content() == "This huddle has ended (the host ended it)."
