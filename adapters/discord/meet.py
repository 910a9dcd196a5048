"""The `/meet` slash command as Discord sees it: its name, options and where it may be used.

The core parses what follows `/meet` (a title, ``list``, ``end <id>``, ``schedule <when> ...``,
``help``), so the command has one optional ``text`` option passed through as typed. Discord matches
options by name, so typed ones (a ``when`` with autocomplete, say) can be added later as further
optional parameters of :func:`meet_command` without breaking what people already type.
``manifests/discord-commands.json`` records the schema; a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands

#: Longer than any title (150) so schedules with an agenda fit; Discord allows up to 6000.
MAX_TEXT = 1000

#: What one use of `/meet` runs: ``(interaction, text)``.
MeetHandler = Callable[[discord.Interaction, str | None], Awaitable[None]]


def meet_command(handler: MeetHandler) -> app_commands.Command[Any, ..., None]:
    """The `/meet` app command; each use calls ``handler(interaction, text)``."""

    @app_commands.command(name="meet", description="Start a video huddle here, or schedule one")
    @app_commands.describe(text="A title, or: list · end <id> · schedule <when> <title> · help")
    # Cards and their notes threads live in server channels, where the bot is a member: a DM or
    # a user-installed app has neither.
    @app_commands.guild_only()
    @app_commands.guild_install()
    async def meet(
        interaction: discord.Interaction,
        text: app_commands.Range[str, 1, MAX_TEXT] | None = None,
    ) -> None:
        await handler(interaction, text)

    return meet
