"""Alice uses `/meet` on a Discord server: the bot, on real discord.py, against a fake Discord."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from bot.types import Post
from media.contrib.client import HuddleClient
from tests.conftest import new_media_context
from tests.discord.conftest import discord_adapter, huddle_id, huddle_on, join_url
from tests.fakes.discord import (
    BOT_PERMISSIONS,
    CREATE_PUBLIC_THREADS,
    EMBED_LINKS,
    EPHEMERAL,
    IDENTIFY,
    INTENT_GUILD_SCHEDULED_EVENTS,
    INTENT_GUILDS,
    SEND_MESSAGES,
    FakeDiscord,
)
from tests.product import RunningHuddle, link_role

pytestmark = pytest.mark.timeout(90)

#: True once the page's peer connection has decoded a remote video frame (WebRTC's own count).
VIDEO_DECODED_JS = """
async () => {
  if (!window.huddle || !window.huddle.pc) return false;
  let decoded = 0;
  (await window.huddle.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") decoded += r.framesDecoded || 0;
  });
  return decoded > 0;
}
"""

MANIFEST = Path(__file__).resolve().parents[2] / "manifests" / "discord-commands.json"


def card_text(fake: FakeDiscord, message_id: str) -> str:
    """The card's embed description as the channel sees it now."""
    description: str = fake.messages[int(message_id)]["embeds"][0]["description"]
    return description


async def meet(fake: FakeDiscord, title: str, user: str = "Alice") -> dict[str, Any]:
    """Alice types `/meet <title>`; returns the card the bot posted in #general."""
    before = len(fake.channel_messages(fake.general_id))
    interaction = await fake.invoke("meet", {"text": title}, user=user)
    await fake.answered(interaction)
    assert interaction.acknowledged and not interaction.original_deleted
    # The answer only the host sees: their own host link (the card's link makes participants).
    [host_text] = interaction.ephemeral_texts
    assert "You host" in host_text
    host_url = _button_urls(interaction.original)[0]
    cards = fake.channel_messages(fake.general_id)
    assert len(cards) == before + 1
    assert host_url not in json.dumps(cards) and host_url not in _button_urls(cards[-1])
    return cards[-1]


def _button_urls(message: dict[str, Any] | None) -> list[str]:
    assert message is not None
    return [
        button["url"]
        for row in message.get("components") or []
        for button in row.get("components") or []
        if "url" in button
    ]


async def test_login_syncs_exactly_the_manifest_commands_to_the_guild(
    huddle: RunningHuddle, fake_discord: FakeDiscord
) -> None:
    [(scope, synced)] = fake_discord.command_syncs
    assert scope == str(fake_discord.guild_id)
    assert synced == json.loads(MANIFEST.read_text())
    assert discord_adapter(huddle).synced == synced
    # Nothing privileged, nothing unused: slash commands arrive whatever the intents; event
    # subscriptions are the RSVP count of scheduled meetings.
    [identify] = fake_discord.ops(IDENTIFY)
    assert identify["d"]["intents"] == INTENT_GUILDS | INTENT_GUILD_SCHEDULED_EVENTS
    async with huddle.http.get(f"{huddle.url}/healthz") as response:
        assert "discord" in (await response.json())["platforms"]


async def test_without_guild_ids_commands_sync_globally(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    async with huddle_on(fake_discord, tmp_path / "data", discord_guild_ids=()):
        [(scope, synced)] = fake_discord.command_syncs
    assert scope == "global"
    assert synced == json.loads(MANIFEST.read_text())


async def test_a_rejected_token_leaves_the_rest_of_the_server_running(
    fake_discord: FakeDiscord, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="huddle.discord")
    async with huddle_on(fake_discord, tmp_path / "data", discord_token="wrong") as running:
        # Discord's refusal has been read (and said): nothing of the bot is coming after it.
        async with asyncio.timeout(30):
            while True:
                if "DISCORD_TOKEN was rejected" in caplog.text:
                    break
                await asyncio.sleep(0.05)
        await running.say("general", "bob", "/meet")  # the web chat still works
    assert not fake_discord.command_syncs and not fake_discord.sessions


async def test_meet_posts_a_card_whose_join_button_works_and_which_follows_the_call(
    huddle: RunningHuddle, fake_discord: FakeDiscord, browser: Browser
) -> None:
    card = await meet(fake_discord, "Retro")
    [embed] = card["embeds"]
    assert embed["title"] == "Retro"
    assert "Hosted by Alice" in embed["description"]
    assert "Nobody in yet" in embed["description"]
    url = join_url(card)
    card_id = card["id"]
    assert url.startswith(f"{huddle.url}/h/{huddle_id(card)}?t=")

    # The notes thread hangs off the card, named after the huddle.
    thread = fake_discord.channels[int(card["id"])]
    assert thread["type"] == 11 and thread["parent_id"] == str(fake_discord.general_id)
    assert thread["name"] == "Retro"

    # Carol clicks Join: the link opens the huddle page in her browser, and she is in.
    context = await new_media_context(browser, huddle.url)
    page = await context.new_page()
    await page.goto(url)
    await page.get_by_test_id("name-input").fill("Carol")
    await page.get_by_test_id("join-button").click()
    await page.get_by_test_id("participant").first.wait_for()
    await fake_discord.wait_for(
        lambda: "1 in the huddle: Carol" in card_text(fake_discord, card_id)
    )

    # Dave joins from a script: the count and the names follow.
    async with HuddleClient(url, "Dave", width=160, height=120) as dave:
        await dave.join()
        await fake_discord.wait_for(
            lambda: "2 in the huddle: Carol, Dave" in card_text(fake_discord, card_id)
        )
        # Carol really is in the call: her browser decodes Dave's video.
        await page.wait_for_function(VIDEO_DECODED_JS, timeout=60_000)
        await dave.leave()
    await fake_discord.wait_for(
        lambda: "1 in the huddle: Carol" in card_text(fake_discord, card_id)
    )
    await context.close()
    await fake_discord.wait_for(lambda: "Everyone left" in card_text(fake_discord, card_id))

    # Alice ends it: the card says how long it lasted and loses its Join button.
    ended = await fake_discord.invoke("meet", {"text": f"end {huddle_id(card)}"})
    await fake_discord.answered(ended)
    assert ended.ephemeral_texts == [f"Ended “Retro” (`{huddle_id(card)}`)."]
    await huddle.parts.huddles.wait_idle()
    final = fake_discord.messages[int(card["id"])]
    assert "Ended, 1 min · attended: Carol, Dave" in final["embeds"][0]["description"]
    assert final["components"] == []
    # One card, edited in place: never a second message for the same huddle.
    assert fake_discord.channel_messages(fake_discord.general_id) == [final]
    assert len(fake_discord.revisions[int(card["id"])]) >= 5


async def test_mistakes_and_lists_are_answered_only_to_the_person_who_typed(
    huddle: RunningHuddle, fake_discord: FakeDiscord
) -> None:
    typo = await fake_discord.invoke("meet", {"text": "lsit"})
    await fake_discord.answered(typo)
    assert typo.original is not None and typo.original["flags"] & EPHEMERAL
    assert typo.ephemeral_texts == [
        'Did you mean `/meet list`? To start a huddle called “lsit”, type `/meet "lsit"`.'
    ]
    assert fake_discord.channel_messages(fake_discord.general_id) == []

    card = await meet(fake_discord, "Standup")
    listing = await fake_discord.invoke("meet", {"text": "list"}, user="Bob")
    await fake_discord.answered(listing)
    [text] = listing.ephemeral_texts
    assert f"`{huddle_id(card)}` Standup · nobody in" in text
    assert listing.original is not None
    [row] = listing.original["components"]
    assert row["components"][0]["label"] == "Join Standup"

    refusal = await fake_discord.invoke("meet", {"text": f"end {huddle_id(card)}"}, user="Bob")
    await fake_discord.answered(refusal)
    assert refusal.ephemeral_texts == [f"Only Alice, who started `{huddle_id(card)}`, can end it."]
    assert len(fake_discord.channel_messages(fake_discord.general_id)) == 1


async def test_a_channel_the_bot_cannot_post_in_gets_a_clear_private_answer(
    huddle: RunningHuddle, fake_discord: FakeDiscord
) -> None:
    locked = fake_discord.ids.next()
    fake_discord.add_channel(
        locked, "announcements", BOT_PERMISSIONS & ~SEND_MESSAGES & ~EMBED_LINKS
    )
    interaction = await fake_discord.invoke("meet", {"text": "Retro"}, channel_id=locked)
    await fake_discord.answered(interaction)
    [text] = interaction.ephemeral_texts
    assert "Embed Links, Send Messages" in text
    assert fake_discord.channel_messages(locked) == []
    assert await huddle.parts.store.open_huddles() == []


async def test_posts_for_the_thread_go_into_it_and_open_it_when_it_is_missing(
    huddle: RunningHuddle, fake_discord: FakeDiscord
) -> None:
    # The bot may not create threads here at first: the card still goes out.
    fake_discord.permissions[fake_discord.general_id] = BOT_PERMISSIONS & ~CREATE_PUBLIC_THREADS
    card = await meet(fake_discord, "Planning")
    assert int(card["id"]) not in fake_discord.channels

    fake_discord.permissions[fake_discord.general_id] = BOT_PERMISSIONS
    record = await huddle.parts.store.huddle(huddle_id(card))
    assert record is not None
    notes = Post(
        key=f"huddle/{record.id}/notes",
        channel=record.channel,
        text="Notes: ship it on Friday.",
        thread_of=record.card_key,
    )
    delivered = await huddle.parts.publisher.publish(notes, wait=30)
    assert delivered is not None
    [posted] = fake_discord.channel_messages(int(card["id"]))
    assert posted["content"] == "Notes: ship it on Friday." and posted["embeds"] == []
    assert fake_discord.channels[int(card["id"])]["name"] == "Planning"
    assert delivered.ref == f"{card['id']}/{posted['id']}"


async def test_a_card_a_moderator_deleted_stays_deleted(
    huddle: RunningHuddle, fake_discord: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    card = await meet(fake_discord, "Oops")
    fake_discord.delete_message(int(card["id"]))
    ended = await fake_discord.invoke("meet", {"text": f"end {huddle_id(card)}"})
    await fake_discord.answered(ended)
    await huddle.parts.huddles.wait_idle()
    async with asyncio.timeout(30):
        await huddle.parts.publisher.flush()  # the edit is settled, not retried forever
    assert fake_discord.channel_messages(fake_discord.general_id) == []
    assert "edit dropped: message deleted on Discord" in caplog.text


async def test_names_people_typed_show_as_typed_on_the_card(
    huddle: RunningHuddle, fake_discord: FakeDiscord
) -> None:
    card = await meet(fake_discord, "Retro")
    record = await huddle.parts.store.huddle(huddle_id(card))
    assert record is not None
    # What the core writes when "**Mallory**" and "> _x_" are in the call.
    post = Post(
        key=record.card_key,
        channel=record.channel,
        title="Retro",
        text=f"Hosted by Alice · id `{record.id}`\n2 in the huddle: **Mallory**, > _x_",
    )
    await discord_adapter(huddle).edit(f"{card['channel_id']}/{card['id']}", post)
    assert card_text(fake_discord, card["id"]) == (
        f"Hosted by Alice · id `{record.id}`\n2 in the huddle: \\*\\*Mallory\\*\\*, > \\_x\\_"
    )


async def test_the_host_makes_someone_else_a_host_by_mention_and_the_link_goes_by_dm(
    huddle: RunningHuddle, fake_discord: FakeDiscord
) -> None:
    card = await meet(fake_discord, "Planning")
    huddle_id = card["embeds"][0]["description"].split("id `")[1].split("`")[0]
    bob = fake_discord.user("Bob")
    # A mention in a string option arrives as <@id>.
    interaction = await fake_discord.invoke("meet", {"text": f"host {huddle_id} <@{bob.id}>"})
    await fake_discord.answered(interaction)
    [answer] = interaction.ephemeral_texts
    assert "Sent them a host link" in answer
    async with asyncio.timeout(30):
        await huddle.parts.publisher.flush()
    dm = fake_discord.dm_with(bob)
    assert dm is not None
    [message] = fake_discord.channel_messages(int(dm["id"]))
    [url] = _button_urls(message)
    assert link_role(url) == "host"
    assert url not in json.dumps(fake_discord.channel_messages(fake_discord.general_id))
