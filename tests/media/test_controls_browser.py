"""The call page on a phone and from the keyboard, in real Chromium: everything fits the screen in
portrait and landscape (the rest behind More), every control is reached with Tab and has a name
the browser's accessibility tree reports, M/V/H/S work, and no button is shown that cannot work."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.media.media_app import media_app
from tests.media.test_browser_call import WITHIN, assert_receiving, join, participant_ids

pytestmark = pytest.mark.timeout(180)

PHONES = {"portrait": (390, 844), "landscape": (844, 390)}

#: What the person sees of the call's controls: each visible one's place and name.
CONTROLS_JS = """
() => [...document.querySelectorAll("#controls button")]
  .filter((b) => b.checkVisibility())
  .map((b) => {
    const r = b.getBoundingClientRect();
    return { id: b.id, left: r.left, top: r.top, right: r.right, bottom: r.bottom };
  })
"""

#: Every element of the call a person can act on (and is shown).
INTERACTIVE_JS = """
() => [...document.querySelectorAll(
    "#call button, #call input, #call select, #call textarea, #call [tabindex]",
  )]
  .filter((e) => e.checkVisibility() && !e.disabled)
  .map((e) => e.id || e.dataset.participantId || e.dataset.testid || e.outerHTML.slice(0, 60))
"""

NO_CAMERA_JS = """
const ask = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (constraints) =>
  constraints && constraints.video
    ? Promise.reject(new DOMException("Requested device not found", "NotFoundError"))
    : ask(constraints);
"""

FOCUSED_JS = """
() => {
  const e = document.activeElement;
  return e ? e.id || e.dataset.participantId || e.dataset.testid || e.outerHTML.slice(0, 60) : null;
}
"""


async def _phone(browser: Browser, base_url: str, url: str, size: tuple[int, int]) -> Page:
    context = await browser.new_context(
        viewport={"width": size[0], "height": size[1]},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=3,
    )
    await context.grant_permissions(["camera", "microphone"], origin=base_url)
    page = await context.new_page()
    await page.goto(url, wait_until="domcontentloaded")
    await page.get_by_test_id("name-input").fill("Bob")
    await page.get_by_test_id("join-button").tap()
    await page.get_by_test_id("leave-button").wait_for()
    return page


def _inside(box: dict[str, float], width: int, height: int) -> bool:
    return (
        box["left"] >= 0 and box["top"] >= 0 and box["right"] <= width and box["bottom"] <= height
    )


@pytest.mark.parametrize("orientation", list(PHONES))
async def test_on_a_phone_the_call_fits_the_screen_and_more_holds_the_rest(
    browser: Browser, orientation: str
) -> None:
    width, height = PHONES[orientation]
    async with media_app() as app:
        alice = await join(browser, app.base_url, app.join_url(), "Alice")
        bob = await _phone(browser, app.base_url, app.join_url(), (width, height))
        ids = await participant_ids(bob)
        await assert_receiving(bob, [ids["Alice"]])

        # Nothing sideways to scroll; every control on screen, finger-sized, in a few rows.
        assert await bob.evaluate("document.documentElement.scrollWidth") <= width
        controls: list[dict[str, Any]] = await bob.evaluate(CONTROLS_JS)
        shown = {c["id"] for c in controls}
        assert {"mute-button", "camera-button", "leave-button", "more-button"} <= shown, shown
        assert "notes-button" not in shown, "the rest waits behind More"
        for c in controls:
            assert _inside(c, width, height), c
            assert c["bottom"] - c["top"] >= 44, c
        bar_top = min(c["top"] for c in controls)
        assert height - bar_top <= height * 0.2, f"the controls take {height - bar_top} px"
        # Both people's tiles are on screen, above the controls.
        for who in ("Alice", "Bob"):
            tile = await bob.locator(f".tile[data-participant-id={ids[who]!r}]").bounding_box()
            assert tile is not None and tile["width"] >= 80, (who, tile)
            assert tile["x"] >= 0 and tile["x"] + tile["width"] <= width + 0.5, (who, tile)
            assert tile["y"] >= 0 and tile["y"] + tile["height"] <= bar_top + 0.5, (who, tile)

        # More: the rest of the controls, still on screen; the notes open over the tiles.
        await bob.get_by_test_id("more-button").tap()
        assert await bob.get_by_test_id("more-button").get_attribute("aria-expanded") == "true"
        controls = await bob.evaluate(CONTROLS_JS)
        shown = {c["id"] for c in controls}
        assert {"notes-button", "view-button", "details-button"} <= shown, shown
        for c in controls:
            assert _inside(c, width, height), c
        await bob.get_by_test_id("notes-button").tap()
        panel = await bob.locator("#notes-panel").bounding_box()
        assert panel is not None and panel["width"] >= 200, panel
        assert panel["x"] >= 0 and panel["x"] + panel["width"] <= width + 0.5, panel
        await bob.get_by_test_id("notes").fill("Seen from a phone")
        await alice.get_by_test_id("notes-button").click()
        await alice.wait_for_function(
            "document.querySelector('[data-testid=notes]').value === 'Seen from a phone'",
            timeout=WITHIN * 1000,
        )
        assert await bob.evaluate("document.documentElement.scrollWidth") <= width


async def test_every_control_is_reached_by_keyboard_has_a_name_and_the_shortcuts_work(
    browser: Browser,
) -> None:
    async with media_app() as app:
        alice = await join(browser, app.base_url, app.join_url(), "Alice")
        bob = await join(browser, app.base_url, app.join_url(), "Bob")
        ids = await participant_ids(alice)
        await assert_receiving(alice, [ids["Bob"]])
        # Panels open, so that their controls are on the page too.
        for panel in ("people-button", "chat-button", "notes-button"):
            await alice.get_by_test_id(panel).click()

        # Tab goes through every control, tile and field shown (then round again).
        wanted = set(await alice.evaluate(INTERACTIVE_JS))
        assert {"mute-button", "share-button", "leave-button", ids["Bob"]} <= wanted, wanted
        await alice.evaluate("document.activeElement && document.activeElement.blur()")
        reached: set[str] = set()
        for _ in range(3 * len(wanted)):
            await alice.keyboard.press("Tab")
            reached.add(await alice.evaluate(FOCUSED_JS))
            if wanted <= reached:
                break
        assert wanted <= reached, f"never reached by Tab: {wanted - reached}"

        # Each has the name a screen reader would say (Chromium's own accessibility tree).
        cdp = await alice.context.new_cdp_session(alice)
        tree = await cdp.send("Accessibility.getFullAXTree")
        unnamed = [
            node
            for node in tree["nodes"]
            if not node.get("ignored")
            and node.get("role", {}).get("value")
            in {"button", "checkbox", "combobox", "textbox", "link", "slider"}
            and not (node.get("name", {}).get("value") or "").strip()
        ]
        assert not unnamed, unnamed

        # Shortcuts, as a person would type them on the call (not in a text field).
        await alice.locator("#grid").click()
        for key, button in (("m", "mute-button"), ("v", "camera-button"), ("h", "hand-button")):
            await alice.keyboard.press(key)
            pressed = alice.locator(f"[data-testid={button}][aria-pressed=true]")
            await pressed.wait_for(timeout=WITHIN * 1000)
        await alice.keyboard.press("s")
        await alice.locator("[data-testid=share-button][aria-pressed=true]").wait_for(
            timeout=WITHIN * 1000
        )
        # The others see it: Bob's page lists Alice's raised hand and her screen.
        await bob.locator(".tile.hand").wait_for(timeout=WITHIN * 1000)
        await bob.locator(".tile.screen").wait_for(timeout=WITHIN * 1000)
        # Typed into the chat, the same letters are text, not shortcuts.
        await alice.get_by_test_id("call-chat-input").fill("")
        await alice.get_by_test_id("call-chat-input").type("mvhs")
        assert await alice.locator("[data-testid=mute-button][aria-pressed=true]").count() == 1


async def test_without_a_camera_the_page_shows_no_camera_button(browser: Browser) -> None:
    async with media_app() as app:
        context = await browser.new_context(viewport={"width": 1024, "height": 720})
        await context.grant_permissions(["camera", "microphone"], origin=app.base_url)
        # A laptop with no camera: the browser finds none when asked for video.
        await context.add_init_script(NO_CAMERA_JS)
        page = await context.new_page()
        await page.goto(app.join_url(), wait_until="domcontentloaded")
        await page.get_by_test_id("name-input").fill("Carol")
        await page.get_by_test_id("join-button").click()
        await page.get_by_test_id("leave-button").wait_for()
        assert await page.get_by_test_id("mute-button").is_visible()
        assert not await page.get_by_test_id("camera-button").is_visible()
        assert await page.locator("#controls button:disabled").count() == 0
