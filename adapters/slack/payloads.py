"""Slack's wire shapes as the adapter reads them, kept as ``TypedDict``s at the edge.

Only the fields the adapter uses are declared; Slack sends more. Every field is optional
(``total=False``) because the payloads are untrusted input: code reads them with ``.get``.
"""

from __future__ import annotations

from typing import Any, TypedDict


class SlashCommand(TypedDict, total=False):
    """A slash command: HTTP form fields, or a Socket Mode ``slash_commands`` payload."""

    command: str
    text: str
    team_id: str
    channel_id: str
    channel_name: str
    user_id: str
    user_name: str
    response_url: str
    trigger_id: str


class ActionUser(TypedDict, total=False):
    """``user`` in an interaction payload."""

    id: str
    username: str
    name: str


class ActionChannel(TypedDict, total=False):
    """``channel`` in an interaction payload."""

    id: str


class ActionContainer(TypedDict, total=False):
    """``container`` in an interaction payload: where the pressed button is."""

    type: str
    channel_id: str
    message_ts: str


class PressedButton(TypedDict, total=False):
    """One entry of ``actions`` in a ``block_actions`` payload."""

    action_id: str
    value: str
    url: str


class BlockActions(TypedDict, total=False):
    """A ``block_actions`` interaction: someone pressed a button in one of the bot's messages."""

    type: str
    user: ActionUser
    channel: ActionChannel
    container: ActionContainer
    response_url: str
    actions: list[PressedButton]


class UserProfile(TypedDict, total=False):
    """``user.profile`` in a ``users.info`` answer."""

    display_name: str
    display_name_normalized: str
    real_name: str
    real_name_normalized: str


class UserInfo(TypedDict, total=False):
    """``user`` in a ``users.info`` answer."""

    id: str
    name: str
    real_name: str
    deleted: bool
    is_bot: bool
    tz: str
    tz_label: str
    tz_offset: int
    profile: UserProfile


class MessageMetadata(TypedDict, total=False):
    """App metadata on a message (``chat.postMessage``'s ``metadata`` argument)."""

    event_type: str
    event_payload: dict[str, Any]


class HistoryMessage(TypedDict, total=False):
    """One message in a ``conversations.history`` / ``conversations.replies`` answer."""

    ts: str
    text: str
    user: str
    bot_id: str
    thread_ts: str
    metadata: MessageMetadata
