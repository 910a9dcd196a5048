"""Buttons under a post: link buttons (Join) and action buttons (RSVP) that reach the core.

An action button carries the core's action string in its ``custom_id`` (``huddle:rsvp:k3f9qz:yes``)
and is a :class:`discord.ui.DynamicItem`: discord.py matches clicks by that pattern, so buttons keep
working after a restart and no per-message view is kept in memory.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Self

import discord

from bot.types import Button, plain_times

log = logging.getLogger("huddle.discord")

BUTTON_LABEL_LIMIT = 80
BUTTON_LIMIT = 25
CUSTOM_ID_LIMIT = 100
ACTION_PREFIX = "huddle:"

#: What a click on an action button runs: ``(interaction, action)``.
ActionHandler = Callable[[discord.Interaction, str], Awaitable[None]]


def _label(text: str) -> str:
    text = plain_times(text)
    return text if len(text) <= BUTTON_LABEL_LIMIT else text[: BUTTON_LABEL_LIMIT - 1] + "…"


class ActionButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=re.compile(re.escape(ACTION_PREFIX) + r"(?P<action>.+)", re.DOTALL),
):
    """A button whose click sends the core ``action``; handled by the client's action handler."""

    def __init__(self, label: str, action: str) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary,
                label=_label(label),
                custom_id=ACTION_PREFIX + action,
            )
        )
        self.action = action

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> Self:
        """Rebuild the button from a click (the label does not matter any more)."""
        return cls("", match["action"])

    async def callback(self, interaction: discord.Interaction) -> None:
        """Hand the click to whoever the client was built with (the adapter)."""
        handler: ActionHandler | None = getattr(interaction.client, "action_handler", None)
        if handler is None:
            log.error("action button clicked on a client without a handler")
            return
        await handler(interaction, self.action)


class PostButtons(discord.ui.View):
    """The buttons of one post, in order, 5 to a row (Discord lays them out)."""

    def __init__(self, buttons: tuple[Button, ...]) -> None:
        super().__init__(timeout=None)
        for button in buttons[:BUTTON_LIMIT]:
            if button.url:
                self.add_item(
                    discord.ui.Button(
                        style=discord.ButtonStyle.link, label=_label(button.label), url=button.url
                    )
                )
            elif button.action and len(ACTION_PREFIX + button.action) <= CUSTOM_ID_LIMIT:
                self.add_item(ActionButton(button.label, button.action))
            else:
                # Dropped rather than failing the whole post forever: the post still informs.
                log.error(
                    "button left out label=%r: no url, or action longer than Discord allows",
                    button.label,
                )
