"""HTTP mode: Slack posts signed requests to /slack/events; anything unsigned gets a 401."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.slack import FakeSlack, command_body, interaction_body, sign
from tests.product import RunningHuddle
from tests.slack.conftest import huddle_on_slack

GENERAL = "C0GENERAL"


@pytest.fixture
async def huddle(tmp_path: Path, slack: FakeSlack) -> AsyncIterator[RunningHuddle]:
    async with huddle_on_slack(tmp_path, slack, mode="http") as running:
        yield running


async def post(huddle: RunningHuddle, body: bytes, headers: dict[str, str]) -> int:
    """Slack's request to ``/slack/events``; the answer's status (the ack, when 200)."""
    async with (
        asyncio.timeout(30),
        huddle.http.post(f"{huddle.url}/slack/events", data=body, headers=headers) as response,
    ):
        await response.read()
        return response.status


async def test_signed_meet_is_acked_and_posts_the_card(
    huddle: RunningHuddle, slack: FakeSlack
) -> None:
    # Slack is slow to answer the first call of the work (who alice is): the ack, the answer
    # to Slack's request, comes anyway while the work waits; the card comes later.
    release = slack.hold("users.info")
    body = command_body(slack.slash_command("Design review"))
    assert await post(huddle, body, sign(body)) == 200
    await slack.wait_for(lambda: "users.info" in slack.held, what="the work begun")
    assert slack.channel(GENERAL) == []
    release.set()
    card = await slack.wait_for(lambda: slack.channel(GENERAL) and slack.card(GENERAL))
    assert card.blocks[0]["text"]["text"] == "Design review"
    assert card.buttons()[0]["url"].startswith(f"{huddle.url}/h/")

    # The Join button's block_actions is acked too.
    click = interaction_body(slack.click(card))
    assert await post(huddle, click, sign(click)) == 200


@pytest.mark.parametrize(
    "case",
    [
        "wrong secret",
        "tampered body",
        "stale timestamp",
        "future timestamp",
        "no headers",
        "no signature",
        "non-integer timestamp",
        "fractional timestamp",
        "empty timestamp",
        "garbage signature",
        "non-ascii signature",
        "signature of another timestamp",
    ],
)
async def test_unsigned_requests_get_401_and_do_nothing(
    huddle: RunningHuddle, slack: FakeSlack, case: str
) -> None:
    body = command_body(slack.slash_command("Intruder"))
    now = int(time.time())
    headers = sign(body)
    if case == "wrong secret":
        headers = sign(body, secret="not-the-secret")
    elif case == "tampered body":
        body = body.replace(b"Intruder", b"Tampered")
    elif case == "stale timestamp":
        headers = sign(body, timestamp=now - 301)
    elif case == "future timestamp":
        headers = sign(body, timestamp=now + 301)
    elif case == "no headers":
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    elif case == "no signature":
        del headers["X-Slack-Signature"]
    elif case == "non-integer timestamp":
        headers["X-Slack-Request-Timestamp"] = "yesterday"
    elif case == "fractional timestamp":
        headers["X-Slack-Request-Timestamp"] = f"{now}.5"
    elif case == "empty timestamp":
        headers["X-Slack-Request-Timestamp"] = ""
    elif case == "garbage signature":
        headers["X-Slack-Signature"] = "v0=" + "zz" * 32
    elif case == "non-ascii signature":
        headers["X-Slack-Signature"] = "v0=é" + headers["X-Slack-Signature"][4:]
    elif case == "signature of another timestamp":
        headers["X-Slack-Request-Timestamp"] = str(now - 1)
    assert await post(huddle, body, headers) == 401
    # ...and the server is fine: the next signed command works.
    good = command_body(slack.slash_command("After"))
    assert await post(huddle, good, sign(good)) == 200
    await slack.wait_for(lambda: slack.channel(GENERAL))
    assert [m.blocks[0]["text"]["text"] for m in slack.channel(GENERAL)] == ["After"]
