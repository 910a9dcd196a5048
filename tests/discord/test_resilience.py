"""Discord misbehaving: gateway drops, rate limits, errors, outages. Nothing lost or doubled."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.discord.conftest import huddle_on
from tests.fakes.discord import IDENTIFY, RESUME, FakeDiscord
from tests.product import RunningHuddle

pytestmark = pytest.mark.timeout(60)

#: Create Message (the fake serves no other method on this path).
MESSAGES = r"^/channels/\d+/messages$"


async def test_a_dropped_gateway_is_resumed_and_no_command_is_lost(
    huddle: RunningHuddle, fake_discord: FakeDiscord
) -> None:
    [session] = fake_discord.sessions.values()
    seen = session.seq

    await fake_discord.drop_gateway()
    # Alice types /meet while the bot is cut off: Discord keeps the event for the session.
    interaction = await fake_discord.invoke("meet", {"text": "Standup"})
    await fake_discord.wait_for(lambda: bool(fake_discord.ops(RESUME)))

    [resume] = fake_discord.ops(RESUME)
    assert resume["d"] == {"token": fake_discord.token, "session_id": session.id, "seq": seen}
    # Through DISCORD_GATEWAY_URL (a proxy, say), not READY's regional resume address.
    assert [path for path, p in fake_discord.received if p["op"] == RESUME] == ["/gateway"]
    assert len(fake_discord.ops(IDENTIFY)) == 1 and session.resumes == 1

    await fake_discord.answered(interaction)
    [card] = fake_discord.channel_messages(fake_discord.general_id)
    assert card["embeds"][0]["title"] == "Standup"

    # ...and the resumed session keeps working for the next one.
    again = await fake_discord.invoke("meet", {"text": "Retro"})
    await fake_discord.answered(again)
    assert len(fake_discord.channel_messages(fake_discord.general_id)) == 2


async def test_a_rate_limit_then_a_lost_answer_still_posts_the_card_once(
    huddle: RunningHuddle, fake_discord: FakeDiscord
) -> None:
    fake_discord.fail("POST", MESSAGES, 429, retry_after=0.3)
    # Discord creates the message but the answer never arrives (an edge timeout): discord.py
    # retries the same request, and the nonce makes Discord hand back the first message.
    fake_discord.fail("POST", MESSAGES, 500, commit=True)

    interaction = await fake_discord.invoke("meet", {"text": "Retro"})
    await fake_discord.answered(interaction)

    attempts = [r for r in fake_discord.requests if re.match(MESSAGES, r.path)]
    assert [r.status for r in attempts] == [429, 500, 200]
    assert attempts[1].at - attempts[0].at >= 0.3  # retry_after honoured
    assert len({r.body["nonce"] for r in attempts}) == 1
    [card] = fake_discord.channel_messages(fake_discord.general_id)
    assert card["embeds"][0]["title"] == "Retro"
    # No error shown: the card is the answer, and the host's own link is all they see.
    [text] = interaction.ephemeral_texts
    assert text.startswith("You host")


async def test_a_card_made_while_discord_is_down_lands_once_when_it_is_back(
    huddle: RunningHuddle, fake_discord: FakeDiscord
) -> None:
    # Discord cannot post messages for ~8 s; on the last failure it did post, then failed.
    fake_discord.fail("POST", MESSAGES, 503, times=3)
    fake_discord.fail("POST", MESSAGES, 503, commit=True)

    interaction = await fake_discord.invoke("meet", {"text": "Planning"})
    await fake_discord.answered(interaction, within=30)  # the core waits 5 s for the card
    # Alice is not left waiting: the huddle is open and she has its Join button privately.
    [text] = interaction.ephemeral_texts
    assert "is open; its card is on its way" in text and "You host" in text
    assert interaction.original is not None
    [row] = interaction.original["components"]
    assert row["components"][0]["url"].startswith(f"{huddle.url}/h/")

    async with asyncio.timeout(60):
        await huddle.parts.publisher.flush()
    [card] = fake_discord.channel_messages(fake_discord.general_id)
    assert card["embeds"][0]["title"] == "Planning"
    statuses = [r.status for r in fake_discord.requests if re.match(MESSAGES, r.path)]
    assert statuses == [503, 503, 503, 503, 200]
    assert int(card["id"]) in fake_discord.channels  # its notes thread too


async def test_the_bot_comes_online_once_discord_answers_again(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    fake_discord.fail("GET", r"^/users/@me$", 503, times=2)
    async with huddle_on(fake_discord, tmp_path / "data") as running:
        logins = [r.status for r in fake_discord.requests if r.path == "/users/@me"]
        assert logins == [503, 503, 200]
        interaction = await fake_discord.invoke("meet", {"text": "Back"})
        await fake_discord.answered(interaction)
        assert fake_discord.channel_messages(fake_discord.general_id)
        # The rest of the server was up all along.
        assert (await running.say("general", "bob", "/meet"))["posts"]
