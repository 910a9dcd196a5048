"""Every `/meet` subcommand from Slack; mistakes and answers go only to the person who typed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.slack import SlackAdapter
from bot.delivery import Undeliverable
from bot.types import Button, ChannelRef, Post
from tests.fakes.slack import FakeSlack, Message
from tests.product import RunningHuddle, link_role
from tests.slack.conftest import huddle_on_slack

GENERAL = "C0GENERAL"


@pytest.fixture
async def huddle(tmp_path: Path, slack: FakeSlack) -> AsyncIterator[RunningHuddle]:
    async with huddle_on_slack(tmp_path, slack) as running:
        yield running


async def meet(slack: FakeSlack, text: str, **where: str) -> dict[str, Any]:
    """Type `/meet text`; return the one ephemeral answer it gets."""
    payload = slack.slash_command(text, **where)
    await slack.acked(await slack.push("slash_commands", payload))
    token = str(payload["response_url"]).rsplit("/", 1)[1]
    [answer] = await slack.wait_for(
        lambda: [r for r in slack.responses if r["token"] == token], what=f"answer to {text}"
    )
    found: dict[str, Any] = answer
    return found


def adapter(huddle: RunningHuddle) -> SlackAdapter:
    [slack_adapter] = [p for p in huddle.parts.platforms if isinstance(p, SlackAdapter)]
    return slack_adapter


async def test_mistakes_and_answers_are_ephemeral_to_the_invoker(
    huddle: RunningHuddle, slack: FakeSlack
) -> None:
    for text, hint in [
        ("lsit", "Did you mean `/meet list`?"),
        ("help", "`/meet list`"),
        ("end", "Which huddle?"),
        ("end zzzzzz", "There is no huddle `zzzzzz`"),
        ("list", "No active huddles"),
    ]:
        answer = await meet(slack, text)
        assert hint in str(answer["text"]), (text, answer)
        assert answer["response_type"] == "ephemeral"
        assert answer["replace_original"] is False
    assert slack.channel(GENERAL) == []
    # Five commands from alice, one users.info: the name (and zone) are cached.
    assert len(slack.calls_to("users.info")) == 1
    assert adapter(huddle).users.cached("U0ALICE") is not None
    assert adapter(huddle).users.cached("U0ALICE").tz == "Europe/Paris"  # type: ignore[union-attr]


async def test_list_and_end_follow_the_host_rules(huddle: RunningHuddle, slack: FakeSlack) -> None:
    await slack.acked(await slack.push("slash_commands", slack.slash_command("Retro")))
    card: Message = await slack.wait_for(lambda: slack.channel(GENERAL) and slack.card(GENERAL))
    huddle_id = card.block_text().split("id `")[1].split("`")[0]

    listing = await meet(slack, "list", user="U0BOB")
    assert f"`{huddle_id}` Retro" in str(listing["text"])
    [join] = [e for b in listing["blocks"] for e in b.get("elements", [])]
    assert join["url"].startswith(f"{huddle.url}/h/{huddle_id}?t=")

    # Bob has no display name: his real name is used.
    refusal = await meet(slack, f"end {huddle_id}", user="U0BOB")
    assert refusal["text"] == f"Only Alice L, who started `{huddle_id}`, can end it."
    done = await meet(slack, f"end {huddle_id}")
    assert done["text"] == f"Ended “Retro” (`{huddle_id}`)."


async def test_answers_fall_back_to_chat_post_ephemeral(
    huddle: RunningHuddle, slack: FakeSlack
) -> None:
    payload = slack.slash_command("lsit", user="U0BOB")
    payload["response_url"] = f"{slack.url}/expired-response-url"
    await slack.acked(await slack.push("slash_commands", payload))
    [answer] = await slack.wait_for(lambda: slack.ephemerals)
    assert answer["user"] == "U0BOB" and answer["channel"] == GENERAL
    assert "Did you mean `/meet list`?" in answer["text"]


async def test_a_channel_the_bot_is_not_in_gets_a_way_out(
    huddle: RunningHuddle, slack: FakeSlack
) -> None:
    slack.closed_channels.add("C0SECRET")
    payload = slack.slash_command("Secret plans", channel="C0SECRET")
    await slack.acked(await slack.push("slash_commands", payload))
    answers = await slack.wait_for(lambda: len(slack.responses) >= 2 and slack.responses)
    texts = " ".join(str(a["text"]) for a in answers)
    assert "its card is on its way" in texts and "You host" in texts
    assert "/invite @huddle" in texts and "not_in_channel" in texts
    assert slack.channel("C0SECRET") == []


async def test_action_buttons_reach_the_core_and_answer_the_presser(
    huddle: RunningHuddle, slack: FakeSlack
) -> None:
    platform = adapter(huddle)
    post = Post(
        key="test/actions",
        channel=ChannelRef("slack", GENERAL),
        title="Friday demo",
        text="Coming?",
        buttons=(Button("Going", action="rsvp:nosuch:yes"), Button("Agenda", "https://x.test/a")),
    )
    ts = await platform.send(post, None)
    [message] = slack.channel(GENERAL)
    assert message.ts == ts
    going, agenda = message.buttons()
    assert (going["action_id"], going["value"]) == ("act-0", "rsvp:nosuch:yes")
    assert "url" not in going and agenda["url"] == "https://x.test/a"

    click = slack.click(message, 0, user="U0BOB")
    envelope = await slack.push("interactive", click)
    await slack.acked(envelope)
    [answer] = await slack.wait_for(lambda: slack.responses)
    assert answer["response_type"] == "ephemeral"
    assert "nosuch" in str(answer["text"])


async def test_posts_for_one_person_go_to_their_dm_and_edit_there(
    huddle: RunningHuddle, slack: FakeSlack
) -> None:
    platform = adapter(huddle)
    post = Post(
        key="test/dm",
        channel=ChannelRef("slack", GENERAL),
        title="Reminder: Retro",
        text="Starts soon.",
        to_user="U0BOB",
    )
    ref = await platform.send(post, None)
    [message] = slack.channel("D0BOB")
    assert ref == f"D0BOB:{message.ts}"
    await platform.edit(ref, Post(**{**post.__dict__, "text": "Starts now."}))
    assert "Starts now." in slack.channel("D0BOB")[0].block_text()
    assert slack.channel(GENERAL) == []


async def test_posts_that_can_never_land_are_given_up(
    huddle: RunningHuddle, slack: FakeSlack
) -> None:
    platform = adapter(huddle)
    dm = Post(key="test/nobody", channel=ChannelRef("slack", GENERAL), text="hi", to_user="U0GONE")
    with pytest.raises(Undeliverable, match="user_not_found"):
        await platform.send(dm, None)
    card = Post(key="test/card", channel=ChannelRef("slack", GENERAL), text="v1")
    ts = await platform.send(card, None)
    slack.delete(slack.channel(GENERAL)[0])
    with pytest.raises(Undeliverable, match="message_not_found"):
        await platform.edit(ts, Post(**{**card.__dict__, "text": "v2"}))
    # Not being in a channel is curable (/invite): that one is retried, not given up.
    slack.closed_channels.add("C0SECRET")
    secret = Post(key="test/secret", channel=ChannelRef("slack", "C0SECRET"), text="psst")
    with pytest.raises(Exception, match="not_in_channel") as raised:
        await platform.send(secret, None)
    assert not isinstance(raised.value, Undeliverable)


async def test_escaped_text_reads_as_typed_and_a_mention_makes_someone_a_host(
    huddle: RunningHuddle, slack: FakeSlack
) -> None:
    # What Slack sends with should_escape on: &, < and > as entities, channels and links
    # wrapped. The title reads as typed.
    typed = "R&amp;D sync for <#C0GENERAL|general> &lt;3 <https://x.test/doc|the doc>"
    await slack.acked(await slack.push("slash_commands", slack.slash_command(typed)))
    card: Message = await slack.wait_for(lambda: slack.channel(GENERAL) and slack.card(GENERAL))
    assert card.blocks[0]["text"]["text"] == "R&D sync for #general <3 the doc"
    huddle_id = card.block_text().split("id `")[1].split("`")[0]

    # Alice makes Bob a host: his own host link reaches his DM, and nowhere else.
    answer = await meet(slack, f"host {huddle_id} <@U0BOB|bob>")
    assert "Sent them a host link" in str(answer["text"])
    dm = await slack.wait_for(lambda: slack.channel("D0BOB"), what="Bob's DM")
    [link] = [e["url"] for b in dm[0].blocks for e in b.get("elements", []) if e.get("url")]
    assert link_role(link) == "host" and "Alice L made you a host" in dm[0].block_text()
    assert link not in str(slack.channel(GENERAL))
    # Bob cannot pass hosting on from the channel: it is the host's to give.
    refusal = await meet(slack, f"host {huddle_id} <@U0ALICE|alice>", user="U0BOB")
    assert "Only Alice L" in str(refusal["text"])
