"""The whole loop in real Chromium: /meet typed in the web chat page, people join from the card,
see and hear each other through our SFU, the card counts them, notes typed in the call land in
the thread when it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page

from tests.conftest import new_media_context
from tests.media.test_browser_call import (
    assert_receiving,
    join,
    participant_ids,
)
from tests.product import RunningHuddle, running_huddle

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
async def huddle(tmp_path: Path) -> AsyncIterator[RunningHuddle]:
    async with running_huddle(tmp_path / "data", empty_grace=2.0) as running:
        yield running


async def chat_page(browser: Browser, base_url: str, user: str) -> Page:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{base_url}/chat/general")
    await page.get_by_test_id("user-input").fill(user)
    await page.get_by_test_id("user-input").dispatch_event("change")
    return page


async def test_meet_in_the_web_chat_then_a_call_through_our_sfu(
    browser: Browser, huddle: RunningHuddle
) -> None:
    chat = await chat_page(browser, huddle.url, "alice")
    await chat.get_by_test_id("chat-input").fill("/meet Design review")
    await chat.get_by_test_id("chat-send").click()
    # The channel's card (the other post naming the huddle is Alice's private host link).
    card = chat.get_by_test_id("card").filter(has_text="Design review").filter(has_text="Hosted by")
    await card.wait_for()
    join_link = card.get_by_test_id("card-button")
    url = await join_link.get_attribute("href")
    assert url is not None and url.startswith(f"{huddle.url}/h/") and "name=alice" in url

    alice = await join(browser, huddle.url, url, "Alice")
    bob = await join(browser, huddle.url, url, "Bob")
    carol = await join(browser, huddle.url, url, "Carol")
    ids = await participant_ids(carol)
    await assert_receiving(alice, [ids["Bob"], ids["Carol"]])
    await assert_receiving(bob, [ids["Alice"], ids["Carol"]])
    await assert_receiving(carol, [ids["Alice"], ids["Bob"]])
    await card.filter(has_text="3 in the huddle: Alice, Bob, Carol").wait_for()

    await bob.get_by_test_id("leave-button").click()
    await card.filter(has_text="2 in the huddle: Alice, Carol").wait_for()
    await assert_receiving(alice, [ids["Carol"]])
    await assert_receiving(carol, [ids["Alice"]])

    # Dave joins late and gets both others' video and audio (how fast: bench/join.py).
    dave = await join(browser, huddle.url, url, "Dave")
    ids = await participant_ids(dave)
    await assert_receiving(dave, [ids["Alice"], ids["Carol"]])
    await card.filter(has_text="3 in the huddle: Alice, Carol, Dave").wait_for()

    # Shared notes: Alice writes, Carol sees it and adds; a reload keeps them.
    await alice.get_by_test_id("notes-button").click()
    await carol.get_by_test_id("notes-button").click()
    await alice.get_by_test_id("notes").fill("DECISION: ship the beta on Friday")
    await carol.wait_for_function(
        "document.querySelector('[data-testid=notes]').value.includes('ship the beta')"
    )
    await carol.get_by_test_id("notes").press("End")
    await carol.get_by_test_id("notes").type("\nTODO @bob write the changelog by tomorrow")
    await alice.wait_for_function(
        "document.querySelector('[data-testid=notes]').value.includes('changelog')"
    )
    await alice.reload(wait_until="domcontentloaded")
    await alice.get_by_test_id("join-button").click()
    await alice.get_by_test_id("leave-button").wait_for()
    assert "changelog" in await alice.get_by_test_id("notes").input_value()

    for page in (alice, carol, dave):
        await page.get_by_test_id("leave-button").click()
    await card.filter(has_text="Ended,").wait_for(timeout=15000)
    thread = chat.locator("ol.thread > li").filter(has_text="Meeting notes: Design review")
    await thread.wait_for(timeout=15000)
    text = await thread.inner_text()
    assert "Decisions:\n• ship the beta on Friday" in text
    assert "@bob: write the changelog" in text
    assert "Attendees: Alice" in text and "Bob" in text and "Dave" in text


async def test_a_tampered_or_expired_link_gets_a_clear_403_page(
    browser: Browser, huddle: RunningHuddle
) -> None:
    card, _host_link = (await huddle.say("general", "alice", "/meet Standup"))["posts"]
    url = card["buttons"][0]["url"]
    # The same huddle's link as the product signs it, but with an expiry a minute ago (by the
    # product's own clock).
    huddle_id = urlsplit(url).path.rsplit("/", 1)[1]
    expired = huddle.parts.media.join_url(huddle_id, huddle.parts.huddles.clock().timestamp() - 60)
    context = await new_media_context(browser, huddle.url)
    page = await context.new_page()
    for link, says in ((url[:-3] + "AAA", "not valid"), (expired, "has expired")):
        response = await page.goto(link, wait_until="domcontentloaded")
        assert response is not None and response.status == 403, link
        assert says in (await page.inner_text("body"))
        assert await page.get_by_test_id("join-button").count() == 0
    # The card's own link still opens the join page.
    response = await page.goto(url, wait_until="domcontentloaded")
    assert response is not None and response.status == 200
    assert await page.get_by_test_id("join-button").count() == 1


async def test_joining_before_the_camera_preview_is_up_still_publishes_camera_and_mic(
    browser: Browser, huddle: RunningHuddle
) -> None:
    # A bug this caught: clicking Join at once showed the call with no camera and dead buttons.
    card, _host_link = (await huddle.say("general", "alice", "/meet Quick"))["posts"]
    context = await new_media_context(browser, huddle.url)
    page = await context.new_page()
    await page.goto(card["buttons"][0]["url"] + "&name=Erin", wait_until="domcontentloaded")
    await page.get_by_test_id("join-button").click()
    await page.get_by_test_id("leave-button").wait_for()
    assert await page.get_by_test_id("mute-button").is_enabled()
    assert await page.get_by_test_id("camera-button").is_enabled()
    kinds = await page.evaluate(
        "window.huddle.pc.getSenders().filter((s) => s.track).map((s) => s.track.kind).sort()"
    )
    assert kinds == ["audio", "video"]


async def test_the_host_removes_someone_then_ends_for_all_and_the_notes_say_so(
    browser: Browser, huddle: RunningHuddle
) -> None:
    chat = await chat_page(browser, huddle.url, "alice")
    await chat.get_by_test_id("chat-input").fill("/meet Negotiation")
    await chat.get_by_test_id("chat-send").click()
    card = chat.get_by_test_id("card").filter(has_text="Hosted by alice")
    await card.wait_for()
    card_url = await card.get_by_test_id("card-button").get_attribute("href")
    # Alice's own host link, which only she sees in the chat.
    host_post = chat.get_by_test_id("card").filter(has_text="You host")
    host_url = await host_post.get_by_role("link", name="Join as host").get_attribute("href")
    assert card_url and host_url and host_url != card_url
    bob_chat = await chat_page(browser, huddle.url, "bob")
    await bob_chat.get_by_test_id("card").filter(has_text="Hosted by alice").wait_for()
    assert await bob_chat.get_by_text("You host").count() == 0

    alice = await join(browser, huddle.url, host_url, "Alice")
    bob = await join(browser, huddle.url, card_url, "Bob")
    ids = await participant_ids(alice)
    await assert_receiving(alice, [ids["Bob"]])
    # Bob has no host controls; Alice has, and removes him from the people list.
    await bob.get_by_test_id("people-button").click()
    assert await bob.get_by_test_id("host-controls").is_hidden()
    assert await bob.get_by_test_id("host-remove").count() == 0
    await alice.get_by_test_id("people-button").click()
    await alice.get_by_test_id("host-controls").wait_for()
    person = alice.get_by_test_id("person").filter(has_text="Bob")
    await person.get_by_test_id("host-remove").click()

    # Bob's call ends: the page says so and his connection is closed.
    await bob.get_by_test_id("notice").filter(has_text="Alice removed you").wait_for()
    assert await bob.evaluate("window.huddle.pc.connectionState") == "closed"
    await alice.get_by_test_id("toast").filter(has_text="Alice removed Bob.").wait_for()
    # The same link, in the same browser, is refused with a page that says why.
    response = await bob.reload(wait_until="domcontentloaded")
    assert response is not None and response.status == 403
    assert "removed you" in await bob.get_by_test_id("refusal-reason").inner_text()

    # Alice ends the huddle for everyone: the card and the notes follow as for any end.
    alice.once("dialog", lambda dialog: dialog.accept())
    await alice.get_by_test_id("end-button").click()
    await alice.get_by_test_id("notice").filter(has_text="ended by Alice").wait_for()
    await card.filter(has_text="Ended,").wait_for(timeout=15000)
    thread = chat.locator("ol.thread > li").filter(has_text="Meeting notes: Negotiation")
    await thread.wait_for(timeout=15000)
    text = await thread.inner_text()
    assert "Host: alice" in text
    assert "Bob (1 min, removed by Alice)" in text


async def test_the_call_chat_shows_html_as_text_links_clickable_and_lands_in_the_thread(
    browser: Browser, huddle: RunningHuddle
) -> None:
    chat = await chat_page(browser, huddle.url, "alice")
    await chat.get_by_test_id("chat-input").fill("/meet Review")
    await chat.get_by_test_id("chat-send").click()
    card = chat.get_by_test_id("card").filter(has_text="Hosted by alice")
    await card.wait_for()
    url = await card.get_by_test_id("card-button").get_attribute("href")
    assert url is not None
    alice = await join(browser, huddle.url, url, "Alice")
    bob = await join(browser, huddle.url, url, "Bob")

    await bob.get_by_test_id("chat-button").click()
    text = "<img src=x onerror=alert(1)> the spec: https://example.test/spec"
    await bob.get_by_test_id("call-chat-input").fill(text)
    await bob.get_by_test_id("call-chat-send").click()
    # Alice's chat is closed: a badge says something came.
    await alice.get_by_test_id("chat-button").filter(has_text="1 new").wait_for()
    await alice.get_by_test_id("chat-button").click()
    message = alice.get_by_test_id("chat-message").filter(has_text="the spec")
    await message.wait_for()
    assert "<img src=x onerror=alert(1)>" in await message.inner_text()  # shown as text
    assert await alice.locator("[data-testid=chat-list] img").count() == 0
    link = message.get_by_role("link", name="https://example.test/spec")
    assert await link.get_attribute("href") == "https://example.test/spec"
    assert await link.get_attribute("rel") == "noopener noreferrer"
    assert "Bob" in await message.inner_text()
    assert await alice.get_by_test_id("chat-button").inner_text() == "Chat"

    for page in (alice, bob):
        await page.get_by_test_id("leave-button").click()
    thread = chat.locator("ol.thread > li").filter(has_text="Chat during the call: Review")
    await thread.wait_for(timeout=15000)
    logged = await thread.inner_text()
    assert "Bob: <img src=x onerror=alert(1)> the spec: https://example.test/spec" in logged


NOTES_VALUE = "document.querySelector('[data-testid=notes]').value"


async def test_two_people_typing_in_the_notes_at_once_both_keep_their_words(
    browser: Browser, huddle: RunningHuddle
) -> None:
    chat = await chat_page(browser, huddle.url, "alice")
    card, _host_link = (await huddle.say("general", "alice", "/meet Retro"))["posts"]
    url = card["buttons"][0]["url"]
    alice = await join(browser, huddle.url, url, "Alice")
    bob = await join(browser, huddle.url, url, "Bob")
    for page in (alice, bob):
        await page.get_by_test_id("notes-button").click()
        await page.get_by_test_id("notes").click()
    # Interleaved keystrokes: each types a line at the same moment, neither waits.
    mine = "DECISION: keep the retro on Fridays\n"
    theirs = "TODO @bob move the board to the wiki by friday\n"
    await asyncio.gather(alice.keyboard.type(mine, delay=40), bob.keyboard.type(theirs, delay=40))
    both = f"{NOTES_VALUE}.length === {len(mine) + len(theirs)}"
    both += f" && {NOTES_VALUE}.includes({mine.strip()!r})"
    both += f" && {NOTES_VALUE}.includes({theirs.strip()!r})"
    for page in (alice, bob):
        await page.wait_for_function(both)
    # Both pages hold the same merged text, and the lines did not get mixed.
    texts = {await page.get_by_test_id("notes").input_value() for page in (alice, bob)}
    assert len(texts) == 1 and sorted(texts.pop().splitlines()) == sorted(
        [mine.strip(), theirs.strip()]
    )
    for page in (alice, bob):
        await page.get_by_test_id("leave-button").click()
    thread = chat.locator("ol.thread > li").filter(has_text="Meeting notes: Retro")
    await thread.wait_for(timeout=15000)
    text = await thread.inner_text()
    assert "keep the retro on Fridays" in text and "@bob: move the board to the wiki" in text
