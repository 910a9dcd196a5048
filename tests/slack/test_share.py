"""One huddle, two platforms: a Slack huddle shared into a web chat channel, cards alive in both,
notes under both."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from media.contrib.client import HuddleClient
from tests.fakes.slack import FakeSlack
from tests.slack.conftest import huddle_on_slack

GENERAL = "C0GENERAL"


async def test_a_slack_huddle_shared_into_the_web_chat_updates_and_gets_notes_in_both(
    tmp_path: Path, slack: FakeSlack
) -> None:
    async with huddle_on_slack(tmp_path, slack, empty_grace=1.0) as huddle:
        await slack.acked(await slack.push("slash_commands", slack.slash_command("Roadmap")))
        card = await slack.wait_for(lambda: slack.channel(GENERAL) and slack.card(GENERAL))
        huddle_id = card.block_text().split("id `")[1].split("`")[0]

        [shared] = (await huddle.say("design", "carol", f"/meet share {huddle_id}"))["posts"]
        assert shared["title"] == "Roadmap"
        assert f"shared from #{GENERAL} (slack)" in shared["text"]

        async with HuddleClient(shared["buttons"][0]["url"], "Carol", width=160, height=120) as c:
            await c.join()
            await slack.wait_for(
                lambda: "1 in the huddle: Carol" in slack.card(GENERAL).block_text(),
                what="the Slack card counting Carol",
            )
            deadline = time.monotonic() + 30
            while "1 in the huddle: Carol" not in _web_card(await huddle.history("design"))["text"]:
                assert time.monotonic() < deadline, "the web chat card never counted Carol"
                await asyncio.sleep(0.1)

        await slack.wait_for(
            lambda: "Meeting notes: Roadmap" in _thread_text(slack, card.ts),
            what="notes under the Slack card",
        )
        deadline = time.monotonic() + 30
        while True:
            history = await huddle.history("design")
            web_card = _web_card(history)
            notes = [p for p in history if p["thread_of"] == web_card["id"]]
            if any(p["title"] == "Meeting notes: Roadmap" for p in notes):
                break
            assert time.monotonic() < deadline, "no notes under the web chat card"
            await asyncio.sleep(0.1)
        assert "Ended" in web_card["text"]


def _web_card(history: list[dict[str, Any]]) -> dict[str, Any]:
    return next(p for p in history if p["title"] == "Roadmap")


def _thread_text(slack: FakeSlack, ts: str) -> str:
    return "\n".join(m.block_text() for m in slack.channel(GENERAL) if m.thread_ts == ts)
