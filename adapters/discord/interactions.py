"""People using the bot: `/meet` and action-button clicks become core calls; answers are private.

Both are acknowledged at once (Discord allows 3 seconds; the core may take longer: database,
posting the card) with an ephemeral "thinking..." that then becomes the core's reply, or goes away
when the answer is a card everyone sees.
"""

from __future__ import annotations

import logging

import discord

from adapters.discord.messages import NO_MENTIONS, render_reply
from bot.commands import Commands
from bot.types import Action, ChannelRef, Command, CommandResult, User

log = logging.getLogger("huddle.discord")

PLATFORM = "discord"

#: What the bot must be allowed in a channel to put a card there (names as Discord shows them).
_NEEDED = {"view_channel": "View Channel", "embed_links": "Embed Links"}
_THREAD_TYPES = (
    discord.ChannelType.public_thread,
    discord.ChannelType.private_thread,
    discord.ChannelType.news_thread,
)


def missing_permissions(interaction: discord.Interaction) -> list[str]:
    """What the bot lacks in the interaction's channel to post a card, by display name."""
    granted = interaction.app_permissions
    missing = [label for name, label in _NEEDED.items() if not getattr(granted, name)]
    channel = interaction.channel
    in_thread = channel is not None and channel.type in _THREAD_TYPES
    if in_thread and not granted.send_messages_in_threads:
        missing.append("Send Messages in Threads")
    elif not in_thread and not granted.send_messages:
        missing.append("Send Messages")
    return missing


def who(interaction: discord.Interaction) -> User:
    """The person behind an interaction; Discord does not share anyone's time zone."""
    return User(str(interaction.user.id), interaction.user.display_name)


def where(interaction: discord.Interaction) -> ChannelRef:
    """The channel (or thread) the interaction happened in."""
    return ChannelRef(PLATFORM, str(interaction.channel_id))


class Interactions:
    """Runs `/meet` and action buttons through the core's :class:`Commands`."""

    def __init__(self, commands: Commands) -> None:
        self.commands = commands

    async def meet(self, interaction: discord.Interaction, text: str | None) -> None:
        """One use of `/meet`: the whole text goes to the core, which knows the subcommands."""
        missing = missing_permissions(interaction)
        if missing:
            # Said up front: otherwise the core would retry a post Discord will always refuse.
            await interaction.response.send_message(
                "I can't post huddle cards in this channel. Ask an admin to give me "
                f"{', '.join(missing)} here.",
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
            return
        if not await self._defer(interaction):
            return
        command = Command(channel=where(interaction), user=who(interaction), text=text or "")
        await self._answer(interaction, await self.commands.handle(command))

    async def action(self, interaction: discord.Interaction, action: str) -> None:
        """A click on an action button (``rsvp:<meeting>:yes``)."""
        if not await self._defer(interaction):
            return
        pressed = Action(channel=where(interaction), user=who(interaction), action=action)
        await self._answer(interaction, await self.commands.act(pressed))

    async def _defer(self, interaction: discord.Interaction) -> bool:
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
        except discord.HTTPException:
            # Too late (over 3 s) or Discord failing: the person sees "did not respond" and can
            # try again; doing the work anyway could start a huddle they think failed.
            log.warning(
                "could not acknowledge interaction=%s channel=%s",
                interaction.id,
                interaction.channel_id,
                exc_info=True,
            )
            return False
        return True

    async def _answer(self, interaction: discord.Interaction, result: CommandResult) -> None:
        try:
            if not result.replies:
                # The card in the channel is the answer; a lingering "thinking..." would confuse.
                await interaction.delete_original_response()
                return
            first, *rest = result.replies
            content, view = render_reply(first)
            await interaction.edit_original_response(
                content=content, view=view, allowed_mentions=NO_MENTIONS
            )
            for reply in rest:
                content, view = render_reply(reply)
                await interaction.followup.send(
                    content, view=view, ephemeral=True, allowed_mentions=NO_MENTIONS
                )
        except discord.HTTPException:
            log.exception(
                "could not answer interaction=%s channel=%s", interaction.id, interaction.channel_id
            )
