"""Host controls in real headless Chromium, asserted on what WebRTC reports (``getStats``).

A host keeps someone muted and the server stops forwarding their audio, even when their page
turns its microphone back on (a modified client); a locked huddle refuses the card's link and
lets it in again once unlocked.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from playwright.async_api import Browser, Page

from tests.media.media_app import media_app
from tests.media.test_browser_call import assert_receiving, join, open_join_page, participant_ids

pytestmark = pytest.mark.timeout(180)

#: Seconds any awaited outcome may take: generous, so that a loaded machine is slow, not red.
WITHIN = 20.0

#: Audio bytes received in all, and video frames decoded in all, on one page.
TOTALS_JS = """
async () => {
  let audioBytes = 0, frames = 0;
  (await window.huddle.pc.getStats()).forEach((r) => {
    if (r.type !== "inbound-rtp") return;
    if (r.kind === "audio") audioBytes += r.bytesReceived || 0;
    if (r.kind === "video") frames += r.framesDecoded || 0;
  });
  return { audioBytes, frames };
}
"""


async def totals(page: Page) -> dict[str, int]:
    result: dict[str, int] = await page.evaluate(TOTALS_JS)
    return result


async def audio_stays_still(page: Page, frames: int = 60) -> None:
    """No audio arrives while ``frames`` more video frames are decoded (the call goes on)."""
    start = await totals(page)
    deadline = time.monotonic() + WITHIN * 3
    while True:
        await asyncio.sleep(0.5)
        now = await totals(page)
        assert now["audioBytes"] == start["audioBytes"], (start, now)
        if now["frames"] >= start["frames"] + frames:
            return
        assert time.monotonic() < deadline, f"video stopped too: {start} -> {now}"


async def audio_grows(page: Page) -> None:
    start = await totals(page)
    deadline = time.monotonic() + WITHIN
    while (await totals(page))["audioBytes"] <= start["audioBytes"] + 2000:
        assert time.monotonic() < deadline, "no audio arrived"
        await asyncio.sleep(0.5)


async def test_kept_muted_means_not_forwarded_even_if_the_page_unmutes_itself(
    browser: Browser,
) -> None:
    async with media_app() as app:
        alice = await join(
            browser, app.base_url, app.server.join_url("h1", time.time() + 600, "host"), "Alice"
        )
        bob = await join(browser, app.base_url, app.join_url(), "Bob")
        ids = await participant_ids(alice)
        await assert_receiving(alice, [ids["Bob"]])

        # Alice: participants may not unmute themselves; then she mutes Bob.
        await alice.get_by_test_id("people-button").click()
        await alice.get_by_test_id("unmute-toggle").uncheck()
        person = alice.get_by_test_id("person").filter(has_text="Bob")
        await person.get_by_test_id("host-mute").click()
        await person.filter(has_text="kept muted").wait_for()
        await bob.get_by_test_id("toast").filter(has_text="Alice muted you").wait_for()
        assert await bob.get_by_test_id("mute-button").inner_text() == "Unmute"

        # Bob's page, modified, turns his microphone back on: the server forwards none of it.
        await bob.evaluate(
            "window.huddle.pc.getSenders().forEach((s) => { if (s.track) s.track.enabled = true; })"
        )
        await audio_stays_still(alice)
        # His own Unmute button is refused too, and says why.
        await bob.get_by_test_id("mute-button").click()
        await bob.get_by_test_id("toast").filter(has_text="will let you speak").wait_for()

        # Alice lets Bob speak: his audio reaches her again.
        await person.get_by_test_id("host-let-speak").click()
        await bob.get_by_test_id("toast").filter(has_text="lets you speak").wait_for()
        await bob.get_by_test_id("mute-button").click()
        await bob.get_by_test_id("mute-button").filter(has_text="Mute").wait_for()
        await audio_grows(alice)
        await assert_receiving(alice, [ids["Bob"]])


async def test_a_locked_huddle_refuses_the_card_link_until_unlocked(browser: Browser) -> None:
    async with media_app() as app:
        alice = await join(
            browser, app.base_url, app.server.join_url("h1", time.time() + 600, "host"), "Alice"
        )
        await alice.get_by_test_id("people-button").click()
        await alice.get_by_test_id("lock-toggle").check()
        await alice.get_by_test_id("toast").filter(has_text="Alice locked the huddle.").wait_for()

        # Bob's valid card link: the page says the huddle is locked (HTTP 403).
        bob = await open_join_page_refused(browser, app.base_url, app.join_url())
        assert "locked" in await bob.get_by_test_id("refusal-reason").inner_text()

        await alice.get_by_test_id("lock-toggle").uncheck()
        await alice.get_by_test_id("toast").filter(has_text="unlocked").wait_for()
        bob_in = await join(browser, app.base_url, app.join_url(), "Bob")
        ids = await participant_ids(alice)
        await assert_receiving(alice, [ids["Bob"]])
        await assert_receiving(bob_in, [ids["Alice"]])


async def open_join_page_refused(browser: Browser, base_url: str, url: str) -> Page:
    page = await (await browser.new_context()).new_page()
    response = await page.goto(url, wait_until="domcontentloaded")
    assert response is not None and response.status == 403
    return page


async def test_someone_on_the_join_page_when_the_host_locks_is_told_on_join(
    browser: Browser,
) -> None:
    async with media_app() as app:
        alice = await join(
            browser, app.base_url, app.server.join_url("h1", time.time() + 600, "host"), "Alice"
        )
        # Bob opened the page before the lock, and clicks Join after it.
        bob = await open_join_page(browser, app.base_url, app.join_url(), "Bob")
        await alice.get_by_test_id("people-button").click()
        await alice.get_by_test_id("lock-toggle").check()
        await alice.get_by_test_id("toast").filter(has_text="locked").wait_for()
        await bob.get_by_test_id("join-button").click()
        await bob.get_by_test_id("notice").filter(has_text="locked").wait_for()
        assert await bob.evaluate("window.huddle.you") is None
