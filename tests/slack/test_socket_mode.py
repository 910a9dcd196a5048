"""Socket Mode: alice types `/meet Retro` in #general; the card, the Join link, the live count, the
Call that Slack draws natively, and the end."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from playwright.async_api import Browser

from media.contrib.client import HuddleClient
from tests.conftest import new_media_context
from tests.fakes.slack import ALL_SCOPES, FakeSlack, Message
from tests.slack.conftest import huddle_on_slack

GENERAL = "C0GENERAL"


def card_text(slack: FakeSlack) -> str:
    return slack.card(GENERAL).block_text()


def huddle_id_of(card: Message) -> str:
    return card.block_text().split("id `")[1].split("`")[0]


async def test_meet_card_join_in_chromium_live_count_call_and_end(
    tmp_path: Path, slack: FakeSlack, browser: Browser
) -> None:
    async with huddle_on_slack(tmp_path, slack) as huddle:
        # Slack is slow to answer the first call of the work (who alice is): the ack comes
        # anyway, empty, while the work waits. The card comes later, as its own message.
        release = slack.hold("users.info")
        envelope = await slack.push("slash_commands", slack.slash_command("Retro"))
        ack = await slack.acked(envelope)
        assert ack == {"envelope_id": envelope.envelope_id}
        await slack.wait_for(lambda: "users.info" in slack.held, what="the work begun")
        assert slack.channel(GENERAL) == []
        release.set()

        card = await slack.wait_for(lambda: slack.channel(GENERAL) and slack.card(GENERAL))
        [header, section, actions] = card.blocks
        assert header == {"type": "header", "text": {"type": "plain_text", "text": "Retro"}}
        # The host by the display name users.info gave, not the handle in the command.
        assert "Hosted by Alice L" in section["text"]["text"]
        assert "Nobody in yet" in section["text"]["text"]
        [join] = actions["elements"]
        assert join["text"]["text"] == "Join" and join["url"].startswith(f"{huddle.url}/h/")
        huddle_id = huddle_id_of(card)
        assert card.key == f"huddle/{huddle_id}/card"
        # Alice's host link reaches her alone: an ephemeral answer, never the channel.
        [host] = await slack.wait_for(lambda: slack.responses, what="the host link")
        assert host["response_type"] == "ephemeral" and "You host" in host["text"]
        [host_url] = [
            element["url"]
            for block in host["blocks"]
            for element in block.get("elements", [])
            if element.get("url")
        ]
        assert host_url != join["url"] and host_url not in str(slack.channel(GENERAL))

        # The huddle is also a Slack Call, shown under the card.
        await slack.wait_for(lambda: slack.registered, what="calls.add")
        [call] = slack.registered.values()
        assert (call.external_unique_id, call.title, call.created_by) == (
            huddle_id,
            "Retro",
            "U0ALICE",
        )
        assert call.join_url.startswith(f"{huddle.url}/h/{huddle_id}?t=")
        shared = await slack.wait_for(
            lambda: [m for m in slack.channel(GENERAL) if m.thread_ts == card.ts]
        )
        assert shared[0].blocks == [{"type": "call", "call_id": call.id}]

        # Clicking Join sends block_actions, which must be acked or Slack shows an error.
        click = await slack.push("interactive", slack.click(card))
        await slack.acked(click)

        context = await new_media_context(browser, huddle.url)
        page = await context.new_page()
        await page.goto(join["url"], wait_until="domcontentloaded")
        await page.get_by_test_id("name-input").fill("Dana")
        await page.get_by_test_id("join-button").click()
        await page.get_by_test_id("participant").first.wait_for()

        await slack.wait_for(
            lambda: "1 in the huddle: Dana" in card_text(slack), what="card shows Dana"
        )
        assert slack.calls_to("chat.update", ok=True)
        await slack.wait_for(lambda: [u["display_name"] for u in call.users] == ["Dana"])

        erin = HuddleClient(join["url"], "Erin", width=160, height=120)
        await erin.join()
        await slack.wait_for(lambda: "2 in the huddle: Dana, Erin" in card_text(slack))
        await slack.wait_for(lambda: len(call.users) == 2)
        await erin.leave()
        await slack.wait_for(lambda: "1 in the huddle: Dana" in card_text(slack))
        await slack.wait_for(lambda: [u["display_name"] for u in call.users] == ["Dana"])

        ending = await slack.push("slash_commands", slack.slash_command(f"end {huddle_id}"))
        await slack.acked(ending)
        _, answer = await slack.wait_for(lambda: len(slack.responses) == 2 and slack.responses)
        assert answer["response_type"] == "ephemeral"
        assert answer["text"] == f"Ended “Retro” (`{huddle_id}`)."
        await slack.wait_for(lambda: "Ended, 1 min" in card_text(slack), what="ended card")
        assert "attended: Dana, Erin" in card_text(slack)
        assert slack.card(GENERAL).buttons() == []
        await slack.wait_for(lambda: call.ended, what="calls.end")
        assert call.duration is not None and call.duration >= 0
        await context.close()


@pytest.mark.parametrize("scopes_header", [True, False], ids=["scopes-header", "missing-scope"])
async def test_without_calls_write_the_card_alone_and_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, scopes_header: bool
) -> None:
    slack = await FakeSlack(
        scopes=ALL_SCOPES - {"calls:write"}, scopes_header=scopes_header
    ).start()
    caplog.set_level(logging.INFO, logger="huddle.slack")
    try:
        async with huddle_on_slack(tmp_path, slack) as huddle:
            for title in ("Standup", "Planning"):
                envelope = await slack.push("slash_commands", slack.slash_command(title))
                await slack.acked(envelope)
            await slack.wait_for(lambda: len(slack.channel(GENERAL)) == 2)
            card = slack.channel(GENERAL)[0]
            url = card.buttons()[0]["url"]
            async with HuddleClient(url, "Frank", width=160, height=120) as frank:
                await frank.join()
                await slack.wait_for(
                    lambda: "1 in the huddle: Frank" in slack.channel(GENERAL)[0].block_text()
                )
            await huddle.parts.huddles.end(huddle_id_of(card), "ended by host")
            await huddle.parts.huddles.wait_idle()
            assert "Ended" in slack.channel(GENERAL)[0].block_text()
    finally:
        await slack.close()
    used = {c.method for c in slack.calls if c.method.startswith("calls.")}
    if scopes_header:
        assert used == set()
    else:
        # Learned from the first refusal, never tried again.
        assert [c.body["error"] for c in slack.calls_to("calls.add")] == ["missing_scope"]
        assert used == {"calls.add"}
    lines = [r.getMessage() for r in caplog.records if "calls:write" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "cards only" in lines[0]
    assert not [m for m in slack.channel(GENERAL) if m.blocks[0]["type"] == "call"]


@pytest.mark.parametrize("how", ["refresh_requested", "dropped"])
async def test_socket_mode_reconnects_and_keeps_taking_commands(
    tmp_path: Path, slack: FakeSlack, how: str
) -> None:
    async with huddle_on_slack(tmp_path, slack):
        if how == "refresh_requested":
            await slack.ask_to_reconnect()
        else:
            await slack.drop_connections()
        await slack.wait_for(
            lambda: slack.opened == 2 and slack.connections == 1,
            what="a new Socket Mode connection",
        )
        envelope = await slack.push("slash_commands", slack.slash_command("Again"))
        await slack.acked(envelope)
        await slack.wait_for(lambda: slack.channel(GENERAL))
