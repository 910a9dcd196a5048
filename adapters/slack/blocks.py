"""The core's neutral posts and replies as Slack Block Kit messages.

Text goes out as ``mrkdwn`` with Slack's three control characters escaped: names come from people
(a participant may call themselves ``<!channel>``), and an unescaped ``<`` would ping or link.
Lengths are cut to Block Kit's limits so an overlong title never turns a post into an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.types import Button, Post, Reply, plain_times, render_times

#: ``metadata.event_type`` of every message the adapter posts for a core post.
POST_EVENT_TYPE = "huddle_post"
#: Prefix of the ``action_id`` of link buttons: Slack still sends ``block_actions`` for them.
LINK_ACTION_PREFIX = "link-"
#: Prefix of the ``action_id`` of action buttons; their ``value`` is the core's action string.
CORE_ACTION_PREFIX = "act-"

HEADER_MAX = 150
SECTION_MAX = 3000
BUTTON_TEXT_MAX = 75
URL_MAX = 3000
VALUE_MAX = 2000
TEXT_MAX = 4000
ACTIONS_MAX = 25

Block = dict[str, Any]


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` as Slack's message formatting requires."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str) -> str:
    """The core's text as Slack ``mrkdwn``: escaped, with its time markup shown in each reader's
    own zone (``<!date^...>``, falling back to the core's text where a client cannot)."""
    dates: list[str] = []

    def date(unix: int, fallback: str) -> str:
        dates.append(f"<!date^{unix}^{{date_short_pretty}} at {{time}}|{escape(fallback)}>")
        # Private-use characters stand in for the tokens so escaping cannot touch them.
        return f"\ue000{len(dates) - 1}\ue001"

    marked = escape(render_times(text, date))
    for index, token in enumerate(dates):
        marked = marked.replace(f"\ue000{index}\ue001", token)
    return marked


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _button(button: Button, index: int) -> Block | None:
    element: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": _cut(plain_times(button.label), BUTTON_TEXT_MAX)},
    }
    if button.action:
        if len(button.action) > VALUE_MAX:
            return None
        element["action_id"] = f"{CORE_ACTION_PREFIX}{index}"
        element["value"] = button.action
    else:
        if not button.url or len(button.url) > URL_MAX:
            return None
        element["action_id"] = f"{LINK_ACTION_PREFIX}{index}"
        element["url"] = button.url
    if index == 0:
        element["style"] = "primary"
    return element


def _buttons(buttons: Sequence[Button]) -> list[Block]:
    elements = [e for i, b in enumerate(buttons) if (e := _button(b, i)) is not None]
    return [
        {"type": "actions", "elements": elements[start : start + ACTIONS_MAX]}
        for start in range(0, len(elements), ACTIONS_MAX)
    ]


def post_blocks(post: Post) -> list[Block]:
    """A card: the title as a header, the text as a section, the buttons as link buttons."""
    blocks: list[Block] = []
    if post.title.strip():
        blocks.append(
            {
                "type": "header",
                "text": {"type": "plain_text", "text": _cut(plain_times(post.title), HEADER_MAX)},
            }
        )
    if post.text.strip():
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(mrkdwn(post.text), SECTION_MAX)},
            }
        )
    return blocks + _buttons(post.buttons)


def post_text(post: Post) -> str:
    """The notification and screen-reader text of a post (Slack shows it where blocks cannot)."""
    lines = [f"*{escape(plain_times(post.title))}*"] if post.title.strip() else []
    lines.append(mrkdwn(post.text))
    return _cut("\n".join(lines), TEXT_MAX)


def post_metadata(key: str) -> dict[str, Any]:
    """The message metadata that carries the core's post key (the idempotency key)."""
    return {"event_type": POST_EVENT_TYPE, "event_payload": {"key": key}}


def reply_blocks(reply: Reply) -> list[Block]:
    """An ephemeral answer: the text, then its buttons."""
    section: Block = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _cut(mrkdwn(reply.text), SECTION_MAX)},
    }
    return [section, *_buttons(reply.buttons)]


def reply_text(reply: Reply) -> str:
    """The fallback text of an ephemeral answer."""
    return _cut(mrkdwn(reply.text), TEXT_MAX)


def call_blocks(call_id: str) -> list[Block]:
    """The block that shows a call registered with ``calls.add`` natively in a conversation."""
    return [{"type": "call", "call_id": call_id}]
