"""Slack failing: rate limits, 500s for a while, an answer lost after the post was made.

Whatever happens, the ack comes first (it never waits for Slack) and the card lands exactly once.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.slack import FakeSlack
from tests.slack.conftest import huddle_on_slack

GENERAL = "C0GENERAL"


async def test_429_then_500s_for_a_while_the_card_is_posted_once(
    tmp_path: Path, slack: FakeSlack
) -> None:
    async with huddle_on_slack(tmp_path, slack) as huddle:
        slack.fail_next(1, 429, retry_after=1)
        slack.fail_for(3.0, 500)
        envelope = await slack.push("slash_commands", slack.slash_command("Outage"))
        await slack.acked(envelope)

        await slack.wait_for(lambda: slack.channel(GENERAL), what="the card")
        # Acked before the card, which could land only once Slack was back.
        [card_call, *_] = slack.calls_to("chat.postMessage", ok=True)
        assert envelope.acked_at is not None and envelope.acked_at < card_call.at
        # The Call's block goes under the card once the card has landed, from the call mirror
        # (which the core does not wait for): wait for it, then for anything else in flight.
        await slack.wait_for(
            lambda: any(m.thread_ts for m in slack.channel(GENERAL)), what="the call block"
        )
        await huddle.parts.huddles.wait_idle()
        statuses = [c.status for c in slack.calls_to("chat.postMessage")]
        assert 500 in statuses, statuses  # it really was refused before it went through
        cards = [m for m in slack.channel(GENERAL) if m.thread_ts is None]
        assert len(cards) == 1
        assert len(slack.calls_to("chat.postMessage", ok=True)) == 2  # the card, the call block
        assert slack.calls_to("users.info")[0].status == 429


async def test_an_answer_lost_after_the_post_does_not_post_twice(
    tmp_path: Path, slack: FakeSlack
) -> None:
    async with huddle_on_slack(tmp_path, slack) as huddle:
        # Slack posts the card, then the answer is lost (a 500 on the way back).
        slack.fail_next(1, 500, methods={"chat.postMessage"}, after_work=True)
        envelope = await slack.push("slash_commands", slack.slash_command("Flaky"))
        await slack.acked(envelope)
        card = await slack.wait_for(lambda: slack.channel(GENERAL) and slack.card(GENERAL))
        await slack.wait_for(lambda: slack.calls_to("conversations.history", ok=True))
        await huddle.parts.huddles.wait_idle()

        [lookup] = slack.calls_to("conversations.history")
        assert lookup.args["include_all_metadata"] in ("1", "true")
        assert [c.status for c in slack.calls_to("chat.postMessage")][:1] == [500]
        assert len([m for m in slack.channel(GENERAL) if m.thread_ts is None]) == 1

        # The core found its ref: the card is edited in place, not posted again.
        huddle_id = card.block_text().split("id `")[1].split("`")[0]
        await huddle.parts.huddles.end(huddle_id, "ended by host")
        await huddle.parts.huddles.wait_idle()
        [update, *_] = slack.calls_to("chat.update", ok=True)
        assert update.args["ts"] == card.ts
        assert "Ended" in slack.card(GENERAL).block_text()


async def test_a_card_queued_through_an_outage_lands_once_when_slack_is_back(
    tmp_path: Path, slack: FakeSlack
) -> None:
    async with huddle_on_slack(tmp_path, slack) as huddle:
        slack.fail_for(10.0, 503)
        envelope = await slack.push("slash_commands", slack.slash_command("Weekly sync"))
        await slack.acked(envelope)
        # The core stops waiting after 5 s and says so, with a Join link that works already.
        [answer] = await slack.wait_for(lambda: slack.responses)
        assert "its card is on its way" in answer["text"]
        assert slack.channel(GENERAL) == []
        await slack.wait_for(lambda: slack.channel(GENERAL), what="the card")
        # The ack came first: it waited neither for the card nor for the core to give up on it.
        [card_call] = slack.calls_to("chat.postMessage", ok=True)
        assert envelope.acked_at is not None
        assert envelope.acked_at < slack.responded_at[0] < card_call.at
        await huddle.parts.huddles.wait_idle()
        assert len([m for m in slack.channel(GENERAL) if m.thread_ts is None]) == 1
        assert len(slack.calls_to("chat.postMessage", ok=True)) == 1
