"""The Discord bot: `/meet` as a slash command, huddle cards as messages with a notes thread.

Imported only when ``DISCORD_TOKEN`` is set; nothing else in huddle imports discord.py.
"""

from adapters.discord.adapter import DiscordAdapter

__all__ = ["DiscordAdapter"]
