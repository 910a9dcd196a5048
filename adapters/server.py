"""The composition root: one aiohttp server holding the core, the media server and the adapters."""

from __future__ import annotations

import gc
import json
import logging
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from adapters import headers
from adapters.proxy import proxy_middleware
from adapters.web import WebAuth, WebChat
from adapters.web.chat import STATIC as WEB_STATIC
from bot.accounts import Accounts
from bot.commands import Commands
from bot.config import Settings
from bot.delivery import Platform, Publisher
from bot.health import Health
from bot.huddles import HuddleService
from bot.links import Links
from bot.meetings import MeetingService
from bot.minutes import Minutes
from bot.public_url import LinkBase
from bot.scheduler import MeetingScheduler
from bot.store import Store
from bot.types import Clock, utc_now
from media.events import HuddleAccess
from media.network import MediaNetwork
from media.server import MediaServer
from media.turn import IceServers
from media.workers import MediaWorkers

log = logging.getLogger("huddle.server")


class PlatformAdapter(Platform, Protocol):
    """A chat platform adapter: output for the core (Platform) plus its own lifecycle."""

    def add_routes(self, app: web.Application) -> None:
        """Mount any HTTP routes the platform needs (Slack's HTTP mode, say)."""
        ...

    async def start(self) -> None:
        """Connect to the platform (sockets, command sync)."""
        ...

    async def stop(self) -> None:
        """Disconnect cleanly."""
        ...


def platform_adapters(
    settings: Settings, commands: Commands, store: Store
) -> list[PlatformAdapter]:
    """The platform adapters the configuration turns on (one ``if`` per platform)."""
    found: list[PlatformAdapter] = []
    if settings.slack_bot_token:
        # Imported here: a server without Slack never loads slack_bolt.
        from adapters.slack import SlackAdapter

        found.append(SlackAdapter(settings, commands))
    if settings.discord_token:
        # Imported here: a server without Discord never loads discord.py.
        from adapters.discord import DiscordAdapter

        found.append(DiscordAdapter(settings, commands))
    return found


@dataclass
class Huddle:
    """Everything one `huddle serve` process runs, wired together."""

    settings: Settings
    store: Store
    media: MediaServer | MediaWorkers
    publisher: Publisher
    huddles: HuddleService
    meetings: MeetingService
    minutes: Minutes
    scheduler: MeetingScheduler
    commands: Commands
    web_chat: WebChat
    accounts: Accounts
    health: Health
    app: web.Application
    platforms: list[PlatformAdapter]


async def build(settings: Settings, clock: Clock | None = None) -> Huddle:
    """Open the store, start the core and the media server, and mount every route.

    ``clock`` is the product's one clock: every date is decided by it (tests run the whole
    product at fixed instants with it); the system's UTC time when not given.
    """
    settings.resolve()
    clock = clock or utc_now
    store = await Store.open(settings.database_url)
    publisher = Publisher(store, clock=clock)
    holder: dict[str, HuddleService] = {}

    async def gate(huddle_id: str) -> HuddleAccess | None:
        # The media core asks the core through this; the core is built after the media server.
        return await holder["huddles"].gate(huddle_id)

    network = MediaNetwork(public_ips=settings.public_ips, udp_ports=settings.udp_ports)
    turn = IceServers(turn_urls=settings.turn_urls, turn_secret=settings.turn_secret)
    media: MediaServer | MediaWorkers
    if settings.media_workers:
        # Media on several cores: huddles hashed over worker processes, one public port still.
        media = MediaWorkers(
            secret=settings.secret,
            public_url=settings.public_url,
            gate=gate,
            workers=settings.media_workers,
            clock=clock,
            ice_servers=list(settings.ice_servers),
            turn=turn,
            network=network,
        )
    else:
        media = MediaServer(
            secret=settings.secret,
            public_url=settings.public_url,
            gate=gate,
            clock=clock,
            ice_servers=list(settings.ice_servers),
            turn=turn,
            network=network,
        )
    # Links follow a trusted proxy's origin when no public URL is configured (adapters/proxy.py).
    link_base = LinkBase(settings.public_url, follows_proxy=settings.links_follow_proxy)
    huddles = HuddleService(store, media, publisher, settings, clock=clock, link_base=link_base)
    holder["huddles"] = huddles
    links = Links(settings.secret, settings.public_url, store, clock=clock, link_base=link_base)
    meetings = MeetingService(
        store,
        publisher,
        huddles,
        links.meeting_url,
        links.calendar_url,
        links.feed_url,
        clock=clock,
    )
    links.huddles, links.meetings = huddles, meetings
    minutes = Minutes(store, publisher, meetings, clock=clock)
    huddles.on_ended.append(minutes.huddle_ended)
    media.subscribe(minutes.on_media_event)
    scheduler = MeetingScheduler(settings.database_url, meetings, minutes, clock=clock)
    commands = Commands(huddles, meetings, minutes, replan=scheduler.sync)
    accounts = Accounts(store, clock=clock)
    auth = WebAuth(
        accounts,
        required=settings.accounts_required,
        public_url=settings.public_url,
        static_dir=WEB_STATIC,
    )
    web_chat = WebChat(store, commands, auth, clock=clock)
    publisher.register(web_chat)
    platforms = platform_adapters(settings, commands, store)
    for platform in platforms:
        publisher.register(platform)
    health = Health(
        store,
        media,
        platforms=sorted(publisher.platforms),
        scheduler=scheduler,
        token=settings.metrics_token,
    )

    # X-Forwarded-* only from a trusted proxy, applied first so everything after sees them.
    proxied = [proxy_middleware(link_base)] if settings.trust_proxy else []
    app = web.Application(middlewares=[*proxied, _errors(health)], client_max_size=1024 * 1024)
    headers.install(app)
    health.add_routes(app)
    media.add_routes(app)
    web_chat.add_routes(app)
    links.add_routes(app)
    for platform in platforms:
        platform.add_routes(app)
    parts = Huddle(
        settings,
        store,
        media,
        publisher,
        huddles,
        meetings,
        minutes,
        scheduler,
        commands,
        web_chat,
        accounts,
        health,
        app,
        platforms,
    )

    async def on_startup(_: web.Application) -> None:
        await media.start()
        publisher.start()
        await huddles.start()
        scheduler.start()
        for platform in platforms:
            await platform.start()
        # What start-up built lives as long as the process: keep it out of the cyclic
        # collector's full passes, which otherwise stop the event loop for ~100 ms now and
        # then under load (bench/commands.py).
        gc.collect()
        gc.freeze()

    async def on_shutdown(_: web.Application) -> None:
        for platform in platforms:
            await platform.stop()
        web_chat.close()
        await scheduler.stop()
        await media.close()
        await huddles.stop()
        await publisher.stop()
        await store.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    return parts


def _errors(health: Health) -> Middleware:
    """Count client errors; turn anything unexpected into a clear 500 and a log line."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                health.count_error("http")
            raise
        except Exception:
            health.count_error("http")
            log.exception("request failed method=%s path=%s", request.method, request.path)
            return web.Response(
                status=500,
                text=json.dumps({"error": "Internal error; it has been logged."}),
                content_type="application/json",
            )
        if response.status >= 400:
            health.count_error("http")
        return response

    return middleware
