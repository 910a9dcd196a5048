"""The pre-join check in real headless Chromium: the microphone's level moves before anyone hears
it, devices can be chosen, and people can join with the microphone or camera off."""

from __future__ import annotations

import time

import pytest
from playwright.async_api import Browser

from tests.media.media_app import media_app
from tests.media.test_browser_call import join, open_join_page, participant_ids

pytestmark = pytest.mark.timeout(120)

WITHIN = 20.0


async def test_the_level_meter_moves_with_the_microphone_and_devices_are_listed(
    browser: Browser,
) -> None:
    async with media_app() as app:
        page = await open_join_page(browser, app.base_url, app.join_url(), "Ann")
        # Chromium's fake microphone beeps: the meter the person sees rises with it.
        await page.wait_for_function(
            "document.querySelector('[data-testid=mic-level]').value > 0.3",
            timeout=WITHIN * 1000,
        )
        mics = await page.get_by_test_id("audio-select").locator("option").all_inner_texts()
        cameras = await page.get_by_test_id("video-select").locator("option").all_inner_texts()
        assert mics and cameras and all(label.strip() for label in mics + cameras)


async def test_joining_with_the_microphone_and_camera_off_shows_so_to_the_others(
    browser: Browser,
) -> None:
    async with media_app() as app:
        alice = await join(browser, app.base_url, app.join_url(), "Alice")
        bob = await open_join_page(browser, app.base_url, app.join_url(), "Bob")
        await bob.get_by_test_id("join-muted").check()
        await bob.get_by_test_id("join-camera-off").check()
        await bob.get_by_test_id("join-button").click()
        await bob.get_by_test_id("leave-button").wait_for()
        assert await bob.get_by_test_id("mute-button").inner_text() == "Unmute"
        assert await bob.get_by_test_id("camera-button").inner_text() == "Camera on"
        enabled = await bob.evaluate(
            "window.huddle.pc.getSenders().filter((s) => s.track).map((s) => s.track.enabled)"
        )
        assert enabled == [False, False]
        ids = await participant_ids(alice)
        deadline = time.monotonic() + WITHIN
        while True:
            people = await alice.evaluate("window.huddle.participants")
            [seen] = [p for p in people if p["id"] == ids["Bob"]]
            if (seen["audio"], seen["video"]) == (False, False):
                break
            assert time.monotonic() < deadline, seen
            await alice.wait_for_timeout(200)


async def test_the_connection_check_reaches_the_media_server_and_leaves_nothing_behind(
    browser: Browser,
) -> None:
    async with media_app() as app:
        page = await open_join_page(browser, app.base_url, app.join_url(), "Ann")
        check = page.locator("[data-testid=connection-check][data-result=direct]")
        await check.wait_for(timeout=WITHIN * 1000)
        text = await check.inner_text()
        assert "answers in" in text and "directly" in text, text
        # The check was its own socket and connection: nobody joined, the room is forgotten.
        assert app.server.participants("h1") == []
        deadline = time.monotonic() + WITHIN
        while app.server.stats().signaling_connections:
            assert time.monotonic() < deadline, "the check's socket stayed open"
            await page.wait_for_timeout(200)
        # Joining afterwards works as ever.
        await page.get_by_test_id("join-button").click()
        await page.get_by_test_id("leave-button").wait_for()
