"""Where discord.py talks to: Discord itself, or ``DISCORD_API_URL`` / ``DISCORD_GATEWAY_URL``.

discord.py builds every REST URL, interaction callbacks included, from the class attribute
``Route.BASE`` and opens the gateway at ``DiscordWebSocket.DEFAULT_GATEWAY``; neither can be set per
client, so an override is process-wide. One process runs one Discord bot, so that is enough.
"""

from __future__ import annotations

import logging

import discord.gateway
import discord.http
import yarl

log = logging.getLogger("huddle.discord")

DEFAULT_API_URL = discord.http.Route.BASE
DEFAULT_GATEWAY_URL = str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)


def point_at(api_url: str, gateway_url: str) -> yarl.URL | None:
    """Send REST calls to ``api_url`` and open the gateway at ``gateway_url`` (empty: Discord's).

    Returns the gateway override, if any: Discord's READY names a resume URL of its own, which the
    client must replace with the override so that a resume goes through the proxy as well.
    """
    discord.http.Route.BASE = api_url.rstrip("/") if api_url else DEFAULT_API_URL
    gateway = yarl.URL(gateway_url) if gateway_url else None
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway or yarl.URL(DEFAULT_GATEWAY_URL)
    if api_url or gateway_url:
        log.info(
            "discord endpoints api=%s gateway=%s",
            discord.http.Route.BASE,
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
        )
    return gateway
