"""A meeting scheduled from Slack: agenda card, RSVP button, reminders in the thread and by DM, and
the huddle that starts at the time."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.slack import PEOPLE, ApiCall, FakeSlack, Message, SlackPerson
from tests.product import RunningHuddle
from tests.slack.conftest import huddle_on_slack

GENERAL = "C0GENERAL"
DANA = SlackPerson("U0DANA", "dana", "Dana Scully", "Dana S", "Europe/Berlin", 3600)
#: The meeting in the first scenario starts START s after it is scheduled; its reminder is
#: REMIND s before that.
START, REMIND = 12, 6
#: ``<!date^UNIX^{tokens}|fallback>``: Slack shows the time in each reader's own zone.
SLACK_DATE = re.compile(r"<!date\^(\d+)\^\{date_short_pretty\} at \{time\}\|([^>]*)>")


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """The default workspace plus dana, who lives in Berlin."""
    fake = await FakeSlack(people=(*PEOPLE, DANA)).start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def huddle(tmp_path: Path, slack: FakeSlack) -> AsyncIterator[RunningHuddle]:
    async with huddle_on_slack(tmp_path, slack) as running:
        async with asyncio.timeout(30):
            while True:
                if running.parts.scheduler.is_leader:
                    break
                await asyncio.sleep(0.05)
        yield running


def keyed(slack: FakeSlack, channel: str, prefix: str) -> list[Message]:
    return [m for m in slack.channel(channel) if (m.key or "").startswith(prefix)]


async def answer_to(slack: FakeSlack, payload: dict[str, Any]) -> dict[str, Any]:
    """The one ephemeral answer sent to the ``response_url`` of a command or a click."""
    token = str(payload["response_url"]).rsplit("/", 1)[1]
    [answer] = await slack.wait_for(
        lambda: [r for r in slack.responses if r["token"] == token], what="an answer"
    )
    found: dict[str, Any] = answer
    return found


def wall_time(call: ApiCall) -> float:
    """When the fake answered ``call``, on the wall clock (``call.at`` is monotonic)."""
    return time.time() - (time.monotonic() - call.at)


def posted(slack: FakeSlack, message: Message) -> ApiCall:
    [call] = [
        c
        for c in slack.calls_to("chat.postMessage", ok=True)
        if c.body["ts"] == message.ts and c.body["channel"] == message.channel
    ]
    return call


async def test_a_meeting_in_seconds_gets_agenda_rsvp_reminders_and_starts(
    huddle: RunningHuddle, slack: FakeSlack
) -> None:
    # Seconds apart, on the real clock: wide enough that a loaded machine gets bob's press in
    # before the reminder, and the reminder out before the start.
    command = slack.slash_command(
        f"schedule in {START} seconds remind {REMIND}s Standup agenda: wins; blockers",
        user="U0DANA",
    )
    typed = time.time()
    envelope = await slack.push("slash_commands", command)
    assert await slack.acked(envelope) == {"envelope_id": envelope.envelope_id}

    # The agenda card, in Block Kit.
    card: Message = await slack.wait_for(lambda: slack.channel(GENERAL) and slack.card(GENERAL))
    landed = time.time()
    assert card.key is not None and card.key.startswith("meeting/")
    header, section, actions = card.blocks
    assert header["text"] == {"type": "plain_text", "text": "Scheduled: Standup"}
    assert actions["type"] == "actions"
    text = section["text"]["text"]
    assert section["text"]["type"] == "mrkdwn"
    [(unix, fallback)] = SLACK_DATE.findall(text)
    starts_at = int(unix)
    # START seconds after the command was read, which was between typing and the card landing.
    assert int(typed) + START - 1 <= starts_at <= landed + START, (typed, starts_at, landed)
    # The zone users.info gave dana, not the server's, not UTC.
    assert fallback.endswith(" Europe/Berlin"), fallback
    assert "host Dana S" in text
    assert "Agenda:\n1. wins\n2. blockers" in text
    meeting_id = text.split("id `")[1].split("`")[0]
    going, not_going, calendar = card.buttons()
    assert (going["text"]["text"], going["action_id"], going["value"]) == (
        "Going",
        "act-0",
        f"rsvp:{meeting_id}:yes",
    )
    assert (not_going["text"]["text"], not_going["value"]) == ("Not going", f"rsvp:{meeting_id}:no")
    assert "url" not in going and "url" not in not_going
    assert calendar["text"]["text"] == "Add to calendar"
    assert calendar["action_id"].startswith("link-")
    assert calendar["url"].startswith(f"{huddle.url}/") and meeting_id in calendar["url"]
    # Nobody said they would come yet: no counts.
    assert "Going:" not in text

    # Bob presses Going.
    click = slack.click(card, 0, user="U0BOB")
    assert click["actions"][0]["value"] == f"rsvp:{meeting_id}:yes"
    pressed = await slack.push("interactive", click)
    await slack.acked(pressed)
    answer = await answer_to(slack, click)
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    assert "you are going" in answer["text"] and "Standup" in answer["text"]
    # Bob has no display name: the card names him by his real name, from users.info.
    await slack.wait_for(
        lambda: "Going: 1 (Bob Stone)" in card.block_text(), what="the card counts bob"
    )
    assert slack.calls_to("chat.update", ok=True)
    assert [b["value"] for b in card.buttons()[:2]] == [going["value"], not_going["value"]]

    # T-REMIND: the reminder in the card's thread, and a DM to bob (he said yes), not to dana.
    reminder: Message = (
        await slack.wait_for(
            lambda: [m for m in slack.channel(GENERAL) if m.thread_ts == card.ts],
            within=START + 30,
            what="the reminder in the card's thread",
        )
    )[0]
    assert reminder.blocks[0]["text"]["text"] == "Reminder: Standup"
    assert SLACK_DATE.search(reminder.block_text())
    [join] = reminder.buttons()
    assert join["text"]["text"] == "Join"
    assert join["url"].startswith(f"{huddle.url}/m/{meeting_id}")
    # Not before it was due (the card's time is rounded down to the second; 1 s for clocks).
    reminded = wall_time(posted(slack, reminder))
    assert reminded >= starts_at - REMIND - 1, (reminded, starts_at)

    [direct] = await slack.wait_for(lambda: slack.channel("D0BOB"), what="bob's DM reminder")
    assert direct.thread_ts is None
    assert direct.blocks[0]["text"]["text"] == "Reminder: Standup"
    direct_time = SLACK_DATE.search(direct.block_text())
    # Bob's own zone (users.info, kept with his RSVP) names the fallback of his reminder.
    assert direct_time is not None and direct_time[2].endswith(" America/New_York")
    assert direct.buttons()[0]["url"] == join["url"]
    assert [c.args["users"] for c in slack.calls_to("conversations.open", ok=True)] == ["U0BOB"]
    assert slack.channel("D0DANA") == []

    # T: the huddle's own card, and the agenda card says it started.
    [started] = await slack.wait_for(
        lambda: keyed(slack, GENERAL, "huddle/"), within=START + 30, what="the huddle card"
    )
    assert started.thread_ts is None
    assert started.blocks[0]["text"] == {"type": "plain_text", "text": "Standup"}
    assert started.buttons()[0]["text"]["text"] == "Join"
    assert started.buttons()[0]["url"].startswith(f"{huddle.url}/h/")
    assert wall_time(posted(slack, started)) >= starts_at - 1
    # The reminder came before the start, not merely before a deadline.
    assert posted(slack, reminder).at < posted(slack, started).at
    await slack.wait_for(
        lambda: card.block_text().startswith("Scheduled: Standup\nStarted."),
        what="the agenda card says Started.",
    )
    assert card.buttons() == []
    assert "Going: 1 (Bob Stone)" in card.block_text()

    # One of each, whatever the retries: no duplicate cards or reminders.
    assert len(keyed(slack, GENERAL, "meeting/")) == 2  # the card and its reminder
    assert len(slack.channel("D0BOB")) == 1
    # Dana's zone was known and the card landed: her command needed no answer of its own.
    schedule_token = command["response_url"].rsplit("/", 1)[1]
    assert [r for r in slack.responses if r["token"] == schedule_token] == []


async def test_not_going_then_cancel_and_a_stale_button_is_answered(
    huddle: RunningHuddle, slack: FakeSlack
) -> None:
    await slack.acked(
        await slack.push(
            "slash_commands", slack.slash_command("schedule in 1 hour Retro", user="U0DANA")
        )
    )
    card: Message = await slack.wait_for(lambda: slack.channel(GENERAL) and slack.card(GENERAL))
    meeting_id = card.block_text().split("id `")[1].split("`")[0]
    stale_going = slack.click(card, 0, user="U0BOB")

    # Alice presses Not going.
    no = slack.click(card, 1, user="U0ALICE")
    assert no["actions"][0]["value"] == f"rsvp:{meeting_id}:no"
    await slack.acked(await slack.push("interactive", no))
    await slack.wait_for(
        lambda: "Going: 0 · Not going: 1" in card.block_text(), what="the card counts alice"
    )

    # Only the host may cancel; dana does, and the card says so, without buttons.
    for user, expected in [
        ("U0BOB", f"Only Dana S, who scheduled `{meeting_id}`, can cancel it."),
        ("U0DANA", f"Cancelled “Retro” (`{meeting_id}`)."),
    ]:
        payload = slack.slash_command(f"cancel {meeting_id}", user=user)
        await slack.acked(await slack.push("slash_commands", payload))
        answer = await answer_to(slack, payload)
        assert answer["text"] == expected and answer["response_type"] == "ephemeral"
    await slack.wait_for(lambda: "Cancelled." in card.block_text(), what="the cancelled card")
    assert card.buttons() == []

    # Bob's Slack still showed the old card: his Going press is answered, and changes nothing.
    edits = card.edits
    await slack.acked(await slack.push("interactive", stale_going))
    answer = await answer_to(slack, stale_going)
    assert "was cancelled" in answer["text"]
    # Any change to the card was queued before that answer: once the outbox has drained, it
    # would have landed.
    async with asyncio.timeout(30):
        await huddle.parts.publisher.flush()
    assert card.edits == edits and "Going: 0" in card.block_text()
