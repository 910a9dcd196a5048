"""Host controls in real headless Chromium, asserted on what WebRTC reports (``getStats``).

A host keeps someone muted and the server stops forwarding their audio, even when their page
turns its microphone back on (a modified client); a locked huddle refuses the card's link and
lets it in again once unlocked.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

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


async def test_a_guest_waits_until_admitted_and_a_denied_guest_never_gets_media(
    browser: Browser,
) -> None:
    async with media_app() as app:
        alice = await join(
            browser, app.base_url, app.server.join_url("h1", time.time() + 600, "host"), "Alice"
        )
        guest_link = app.server.join_url("h1", time.time() + 600, "guest")
        gus = await open_join_page(browser, app.base_url, guest_link, "Gus")
        await gus.get_by_test_id("join-button").click()
        await gus.get_by_test_id("waiting").wait_for()
        assert (await totals(gus))["audioBytes"] == 0 and await gus.evaluate(
            "window.huddle.you"
        ) is None

        # Alice hears of him (a badge on People, a notice) and lets him in.
        await alice.get_by_test_id("toast").filter(has_text="Gus is waiting").wait_for()
        assert "1 waiting" in await alice.get_by_test_id("people-button").inner_text()
        await alice.get_by_test_id("people-button").click()
        waiter = alice.get_by_test_id("waiter").filter(has_text="Gus (guest)")
        await waiter.get_by_test_id("admit-button").click()
        await gus.get_by_test_id("leave-button").wait_for()
        ids = await participant_ids(gus)
        await assert_receiving(gus, [ids["Alice"]])
        await assert_receiving(alice, [ids["Gus"]])

        # Greta waits too and is turned away: her page never received any media.
        greta = await open_join_page(browser, app.base_url, guest_link, "Greta")
        await greta.get_by_test_id("join-button").click()
        await greta.get_by_test_id("waiting").wait_for()
        waiter = alice.get_by_test_id("waiter").filter(has_text="Greta")
        await waiter.wait_for()
        # While the call goes on (Alice decodes 30 more of Gus's frames), nothing reaches her.
        before = await totals(alice)
        deadline = time.monotonic() + WITHIN
        while (await totals(alice))["frames"] < before["frames"] + 30:
            assert time.monotonic() < deadline, "the call stopped"
            assert await totals(greta) == {"audioBytes": 0, "frames": 0}
            await asyncio.sleep(0.2)
        assert await totals(greta) == {"audioBytes": 0, "frames": 0}
        await waiter.get_by_test_id("deny-button").click()
        await greta.get_by_test_id("notice").filter(has_text="did not let you").wait_for()
        assert await greta.evaluate("window.huddle.ws.readyState") == 3  # CLOSED
        assert app.server.stats().participants == 2


async def test_the_join_page_asks_for_the_passcode_and_lets_a_wrong_one_be_retried(
    browser: Browser,
) -> None:
    from media.events import HuddleAccess
    from media.passcodes import digest

    async with media_app() as app:
        app.gate.huddles["h1"] = HuddleAccess("h1", "Standup", True, passcode=digest("h1", "4711"))
        page = await open_join_page(browser, app.base_url, app.join_url(), "Bob")
        await page.get_by_test_id("passcode-input").fill("1234")
        await page.get_by_test_id("join-button").click()
        await page.get_by_test_id("prejoin-status").filter(has_text="not right").wait_for()
        await page.get_by_test_id("passcode-input").fill("4711")
        await page.get_by_test_id("join-button").click()
        await page.get_by_test_id("leave-button").wait_for()
        alice = await join(
            browser, app.base_url, app.server.join_url("h1", time.time() + 600, "host"), "Alice"
        )
        assert await alice.get_by_test_id("passcode-input").is_hidden()
        ids = await participant_ids(alice)
        await assert_receiving(alice, [ids["Bob"]])


async def test_a_raised_hand_shows_in_order_for_everyone_and_the_host_lowers_it(
    browser: Browser,
) -> None:
    async with media_app() as app:
        alice = await join(
            browser, app.base_url, app.server.join_url("h1", time.time() + 600, "host"), "Alice"
        )
        bob = await join(browser, app.base_url, app.join_url(), "Bob")
        await bob.keyboard.press("h")  # the shortcut, as the button's aria-keyshortcuts says
        await bob.get_by_test_id("hand-button").filter(has_text="Lower hand").wait_for()
        await alice.get_by_test_id("people-button").click()
        person = alice.get_by_test_id("person").filter(has_text="Bob")
        await person.filter(has_text="✋ 1").wait_for()
        bob_tile = alice.locator(".tile.hand").filter(has_text="Bob")
        await bob_tile.wait_for()
        # A reaction floats over Bob's tile on Alice's page.
        await bob.get_by_role("button", name="React 👏").click()
        await bob_tile.get_by_test_id("reaction").filter(has_text="👏").wait_for()
        # Alice lowers his hand; his page says so.
        await person.get_by_test_id("host-lower-hand").click()
        await bob.get_by_test_id("hand-button").filter(has_text="Raise hand").wait_for()
        await alice.locator(".tile.hand").wait_for(state="detached")


def _speech(path: Path) -> Path:
    """A few sentences of speech (espeak-ng, which `make test` installs), as a fake microphone
    plays it (looped): pauses between words and all."""
    text = (
        "Good morning everyone. Let us start with the numbers from last week, "
        "then the plan for the release, and then questions."
    )
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), text], check=True)
    return path


async def test_the_one_talking_is_named_the_speaker_and_their_tile_lights_up(
    tmp_path: Path,
) -> None:
    from playwright.async_api import async_playwright

    from tests.conftest import CHROMIUM_ARGS, chromium_path

    voice = _speech(tmp_path / "voice.wav")
    async with media_app() as app, async_playwright() as pw:
        # A browser whose fake microphone plays the speech: everyone in it talks.
        talking = await pw.chromium.launch(
            executable_path=chromium_path(),
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={voice}"],
        )
        quiet = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            alice = await join(quiet, app.base_url, app.join_url(), "Alice")
            bob = await join(talking, app.base_url, app.join_url(), "Bob")
            await alice.get_by_test_id("mute-button").click()  # Alice is muted
            ids = await participant_ids(alice)
            await alice.wait_for_function(
                f"window.huddle.speaker === {ids['Bob']!r}", timeout=WITHIN * 1000
            )
            await alice.locator(".tile.speaking").filter(has_text="Bob").wait_for()
            assert await alice.locator(".tile.speaking").count() == 1
            # Speaker view puts him large on Alice's page.
            await alice.get_by_test_id("view-button").click()
            await alice.locator(".tile.main").filter(has_text="Bob").wait_for()
            # Bob mutes: he stops speaking (the speaker stays him through the silence).
            await bob.get_by_test_id("mute-button").click()
            await alice.locator(".tile.speaking").wait_for(state="detached")
            assert await alice.evaluate("window.huddle.speaker") == ids["Bob"]
        finally:
            await talking.close()
            await quiet.close()
