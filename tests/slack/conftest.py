"""A fake Slack per test, and the whole product started against it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.product import RunningHuddle, running_huddle


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """A fake Slack with every scope the manifest asks for."""
    fake = await FakeSlack().start()
    try:
        yield fake
    finally:
        await fake.close()


@asynccontextmanager
async def huddle_on_slack(
    data_dir: Path, slack: FakeSlack, mode: str = "socket", **overrides: Any
) -> AsyncIterator[RunningHuddle]:
    """`huddle serve` with Slack configured for ``mode`` ("socket" or "http") against ``slack``."""
    tokens: dict[str, Any] = {"slack_bot_token": BOT_TOKEN, "slack_api_url": slack.api_url}
    if mode == "socket":
        tokens["slack_app_token"] = APP_TOKEN
    else:
        tokens["slack_signing_secret"] = SIGNING_SECRET
    async with running_huddle(data_dir, **tokens, **overrides) as running:
        if mode == "socket":
            await slack.wait_connected()
        yield running
