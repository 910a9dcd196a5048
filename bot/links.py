"""Signed links the core hands out: a meeting's page (opens its call), its .ics, a channel feed.

They never expire (calendar subscriptions must keep working) but are signed so ids cannot be
guessed into feeds of other channels. A bad signature gets a clear 403 page.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from bot.calendar import calendar
from bot.huddles import HuddleService
from bot.meetings import MeetingService
from bot.public_url import LinkBase
from bot.store import Store
from bot.types import ChannelRef, Clock, utc_now

#: The meeting pages' script and style.
PAGE_FILES = Path(__file__).parent / "web"


class Links:
    """Makes and serves the core's signed links."""

    def __init__(
        self,
        secret: bytes,
        public_url: str,
        store: Store,
        clock: Clock = utc_now,
        link_base: LinkBase | None = None,
    ) -> None:
        self.secret = secret
        self.public_url = public_url
        #: Where links point now, when that may change (a trusted proxy's origin).
        self.link_base = link_base
        self.store = store
        self.clock = clock
        self.huddles: HuddleService | None = None
        self.meetings: MeetingService | None = None

    def _sign(self, subject: str) -> str:
        digest = hmac.new(self.secret, f"huddle-link:{subject}".encode(), hashlib.sha256)
        return digest.hexdigest()[:32]

    def _valid(self, subject: str, signature: str) -> bool:
        return hmac.compare_digest(self._sign(subject), signature)

    @property
    def base(self) -> str:
        """The base links are made on now."""
        return self.link_base.current if self.link_base else self.public_url

    def meeting_url(self, meeting_id: str) -> str:
        """The meeting's own page: it opens the call once it has started."""
        return f"{self.base}/m/{meeting_id}?s={self._sign('meeting:' + meeting_id)}"

    def calendar_url(self, meeting_id: str) -> str:
        """The meeting's .ics file."""
        return f"{self.base}/m/{meeting_id}.ics?s={self._sign('meeting:' + meeting_id)}"

    def feed_url(self, channel: ChannelRef) -> str:
        """The channel's iCalendar feed, for calendar subscriptions."""
        subject = f"feed:{channel.platform}:{channel.channel_id}"
        return (
            f"{self.base}/calendar/{quote(channel.platform)}/"
            f"{quote(channel.channel_id, safe='')}.ics?s={self._sign(subject)}"
        )

    def add_routes(self, app: web.Application) -> None:
        """Mount the meeting page, .ics and feed routes."""
        app.router.add_get("/m/{meeting_id}.ics", self._meeting_ics)
        app.router.add_get("/m/{meeting_id}", self._meeting_page)
        app.router.add_get("/calendar/{platform}/{channel}.ics", self._feed)
        app.router.add_static("/pages/", PAGE_FILES)

    async def _meeting_page(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        if not self._valid(f"meeting:{meeting_id}", request.query.get("s", "")):
            return _page(403, "This link is not valid", "Ask for a new link to the meeting.")
        assert self.meetings is not None and self.huddles is not None
        meeting = await self.store.meeting(meeting_id)
        if meeting is None:
            return _page(404, "No such meeting", "This meeting does not exist.")
        if meeting.state == "cancelled":
            return _page(410, meeting.title, "This meeting was cancelled.")
        now = self.clock()
        states = await self.store.occurrence_states(meeting.id)
        for _, (state, huddle_id) in sorted(states.items(), reverse=True):
            if state == "started" and huddle_id:
                huddle = await self.store.huddle(huddle_id)
                if huddle is not None and huddle.is_open:
                    target = self.huddles.join_url(huddle_id)
                    if name := request.query.get("name"):
                        target += f"&name={quote(name[:64])}"
                    raise web.HTTPFound(target)
        nxt = await self.meetings.next_occurrence(
            meeting, now - timedelta(seconds=meeting.duration_s)
        )
        if nxt is None:
            return _page(410, meeting.title, "This meeting has no more occurrences.")
        unix = int(nxt.timestamp())
        body = (
            f"Starts <time data-unix='{unix}'>{nxt:%a %d %b %H:%M} UTC</time>. "
            "This page opens the call when it starts."
        )
        return _page(200, meeting.title, body, refresh=15, raw=True)

    async def _meeting_ics(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        if not self._valid(f"meeting:{meeting_id}", request.query.get("s", "")):
            return _page(403, "This link is not valid", "Ask for a new link to the meeting.")
        meeting = await self.store.meeting(meeting_id)
        if meeting is None:
            return _page(404, "No such meeting", "This meeting does not exist.")
        cancelled = await self._cancelled(meeting.id)
        body = calendar(
            meeting.title, [(meeting, self.meeting_url(meeting.id), cancelled)], self.clock()
        )
        return _ics(body, f"{meeting.id}.ics")

    async def _feed(self, request: web.Request) -> web.Response:
        channel = ChannelRef(request.match_info["platform"], request.match_info["channel"])
        subject = f"feed:{channel.platform}:{channel.channel_id}"
        if not self._valid(subject, request.query.get("s", "")):
            return _page(403, "This link is not valid", "Ask for the channel's calendar link.")
        meetings = await self.store.scheduled_meetings(channel)
        entries = [(m, self.meeting_url(m.id), await self._cancelled(m.id)) for m in meetings]
        return _ics(calendar(f"#{channel.channel_id}", entries, self.clock()), "feed.ics")

    async def _cancelled(self, meeting_id: str) -> list[datetime]:
        states = await self.store.occurrence_states(meeting_id)
        return [start for start, (state, _) in states.items() if state == "cancelled"]


def _ics(body: bytes, filename: str) -> web.Response:
    return web.Response(
        body=body,
        headers={
            "Content-Type": "text/calendar; charset=utf-8",
            "Content-Disposition": f'inline; filename="{filename}"',
        },
    )


def _page(
    status: int, title: str, message: str, refresh: int = 0, raw: bool = False
) -> web.Response:
    text = message if raw else html.escape(message)
    meta = f"<meta http-equiv='refresh' content='{refresh}'>" if refresh else ""
    # Files, not inline: the pages' CSP runs no inline script or style (adapters/headers.py).
    document = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"{meta}<title>{html.escape(title)} · huddle</title>"
        "<link rel='stylesheet' href='/pages/page.css'></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{text}</p>"
        "<script src='/pages/page.js' defer></script></body></html>"
    )
    return web.Response(status=status, text=document, content_type="text/html")
