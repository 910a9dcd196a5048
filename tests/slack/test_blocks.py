"""Posts as Block Kit: escaping, per-reader times, Block Kit's limits; and the configuration."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest

from adapters.server import platform_adapters
from adapters.slack.blocks import mrkdwn, post_blocks, post_text
from adapters.slack.users import display_name
from bot.commands import Commands
from bot.config import Settings
from bot.store import Store
from bot.types import Button, ChannelRef, Post, time_markup

CHANNEL = ChannelRef("slack", "C0GENERAL")


def test_names_cannot_ping_or_link() -> None:
    text = "2 in the huddle: <!channel>, Tom & <https://evil.test|Jerry>"
    assert mrkdwn(text) == (
        "2 in the huddle: &lt;!channel&gt;, Tom &amp; &lt;https://evil.test|Jerry&gt;"
    )


def test_times_show_in_each_readers_zone_with_the_core_fallback() -> None:
    moment = datetime(2026, 3, 27, 13, 30, tzinfo=UTC)
    text = f"Starts {time_markup(moment, 'Europe/Paris')} <sharp>"
    assert mrkdwn(text) == (
        f"Starts <!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}"
        "|Fri 27 Mar 14:30 Europe/Paris> &lt;sharp&gt;"
    )
    post = Post(key="k", channel=CHANNEL, title=f"Due {time_markup(moment, 'UTC')}", text=text)
    header = post_blocks(post)[0]
    assert header["text"] == {"type": "plain_text", "text": "Due Fri 27 Mar 13:30 UTC"}
    assert "<!date^" in post_text(post)


def test_block_kit_limits_are_kept() -> None:
    post = Post(
        key="k",
        channel=CHANNEL,
        title="T" * 400,
        text="x" * 5000,
        buttons=(
            Button("L" * 100, "https://x.test/"),
            Button("too long a link", "https://x.test/" + "a" * 3000),
            *(Button(f"b{i}", f"https://x.test/{i}") for i in range(30)),
        ),
    )
    header, section, first, second = post_blocks(post)
    assert len(header["text"]["text"]) == 150
    assert len(section["text"]["text"]) == 3000
    assert len(first["elements"]) == 25 and len(second["elements"]) == 6
    ids = [e["action_id"] for block in (first, second) for e in block["elements"]]
    assert len(set(ids)) == len(ids)
    assert len(first["elements"][0]["text"]["text"]) == 75


def test_display_name_order() -> None:
    assert (
        display_name({"name": "bob", "profile": {"display_name": "", "real_name": "B"}}, "x") == "B"
    )
    assert display_name({"name": "bob", "profile": {"display_name": "Bobby"}}, "x") == "Bobby"
    assert display_name({}, "fallback") == "fallback"


@pytest.mark.parametrize(
    ("tokens", "error"),
    [
        ({}, "SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)"),
        ({"slack_app_token": "xoxb-wrong-kind"}, "app-level token (xapp-...)"),
    ],
)
def test_configuration_mistakes_are_explained(
    tmp_path: Path, tokens: dict[str, str], error: str
) -> None:
    settings = Settings(data_dir=tmp_path, slack_bot_token="xoxb-1")
    settings.slack_app_token = tokens.get("slack_app_token", "")
    with pytest.raises(ValueError, match=re.escape(error)):
        platform_adapters(settings, cast(Commands, None), cast(Store, None))
