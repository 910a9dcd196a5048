"""`/meet` and its subcommands, and action buttons: one entry point each for every adapter."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot import parser
from bot.cards import list_line
from bot.huddles import HuddleService
from bot.meetings import MeetingService
from bot.minutes import Minutes
from bot.records import Huddle, Meeting
from bot.types import Action, Button, Command, CommandResult, Reply, time_markup
from bot.when import WhenError, parse_when, zone

log = logging.getLogger("huddle.commands")

OOPS = "Something went wrong on our side and it has been logged. Please try again in a moment."

#: Called after a meeting changes so the scheduler re-plans it at once (it also polls).
Replan = Callable[[str], Awaitable[None]]


async def _no_replan(meeting_id: str) -> None:
    return None


class Commands:
    """Turns a parsed `/meet` into work and answers; never raises to the adapter."""

    def __init__(
        self,
        huddles: HuddleService,
        meetings: MeetingService,
        minutes: Minutes,
        replan: Replan = _no_replan,
    ) -> None:
        self.huddles = huddles
        self.meetings = meetings
        self.minutes = minutes
        self.replan = replan

    async def handle(self, command: Command) -> CommandResult:
        """Do what ``command`` asks and say what happened."""
        request = parser.parse(command.text)
        log.info(
            "command channel=%s user=%s request=%s",
            command.channel,
            command.user.id,
            type(request).__name__,
        )
        try:
            return await self._dispatch(command, request)
        except Exception:
            log.exception("command failed channel=%s text=%r", command.channel, command.text[:200])
            return CommandResult(replies=[Reply(OOPS)])

    async def act(self, action: Action) -> CommandResult:
        """Someone pressed an action button (``rsvp:<meeting>:yes``)."""
        log.info(
            "action channel=%s user=%s action=%s", action.channel, action.user.id, action.action
        )
        try:
            kind, _, rest = action.action.partition(":")
            if kind == "rsvp":
                meeting_id, _, answer = rest.partition(":")
                command = Command(action.channel, action.user, f"rsvp {meeting_id} {answer}")
                return await self.handle(command)
            if kind == "rate":
                huddle_id, _, score = rest.partition(":")
                if score not in {"1", "2", "3", "4", "5"}:
                    return _reply("Ratings go from 1 to 5.")
                user = action.user
                voter = f"{action.channel.platform}:{user.id}"
                await self.minutes.feedback(huddle_id, voter, user.name, int(score))
                return _reply(f"Thanks: you rated the call {score}/5.")
            return CommandResult(replies=[Reply("That button is no longer available.")])
        except Exception:
            log.exception("action failed channel=%s action=%r", action.channel, action.action)
            return CommandResult(replies=[Reply(OOPS)])

    async def _dispatch(self, command: Command, request: parser.Request) -> CommandResult:
        if isinstance(request, parser.ParseError):
            return _reply(request.message)
        if isinstance(request, parser.ShowHelp):
            return _reply(parser.USAGE)
        if isinstance(request, parser.StartHuddle):
            return await self._start(command, request)
        if isinstance(request, parser.ListHuddles):
            return await self._list(command)
        if isinstance(request, parser.EndHuddle):
            return await self._end(command, request)
        if isinstance(
            request,
            parser.LockHuddle
            | parser.HostLink
            | parser.SetLobby
            | parser.GuestLink
            | parser.SetPasscode,
        ):
            return await self._host_only(command, request)
        if isinstance(request, parser.ScheduleMeeting):
            return await self._schedule(command, request)
        if isinstance(request, parser.SetZone):
            return await self._zone(command, request)
        if isinstance(request, parser.CancelMeeting):
            return await self._cancel(command, request)
        if isinstance(request, parser.AddAgendaItem):
            return await self._agenda(command, request)
        if isinstance(request, parser.ShareHuddle):
            return await self._share(command, request)
        if isinstance(request, parser.CloseItem):
            message = await self.minutes.done(request.item_id, command.user)
            await self.replan(f"item:{request.item_id}")
            return _reply(message)
        return await self._rsvp(command, request)

    async def _start(self, command: Command, request: parser.StartHuddle) -> CommandResult:
        huddle, delivered = await self.huddles.create(
            command.channel, command.user, request.title, lobby=request.lobby
        )
        # Whoever typed `/meet` hosts it: their link, unlike the card's, is for them alone.
        host = self.huddles.host_reply(huddle)
        if delivered is None:
            queued = Reply(
                f"Huddle `{huddle.id}` is open; its card is on its way (the chat platform is "
                f"slow to answer right now). {host.text}",
                host.buttons,
            )
            return CommandResult(replies=[queued])
        return CommandResult(posted=[delivered], replies=[host])

    async def _list(self, command: Command) -> CommandResult:
        store = self.huddles.store
        open_here = await store.open_huddles(command.channel)
        upcoming = await store.scheduled_meetings(command.channel)
        now = self.huddles.clock()
        lines: list[str] = []
        buttons: list[Button] = []
        if open_here:
            lines.append(f"Active huddles ({len(open_here)}):")
        for huddle in open_here:
            stays = await store.attendance(huddle.id)
            present = sum(1 for s in stays if s.left_at is None)
            lines.append(list_line(huddle, present, now))
            buttons.append(Button(f"Join {huddle.title}"[:75], self.huddles.join_url(huddle.id)))
        zone_name = await self.meetings.zone_for(command.channel, command.user)
        soon = []
        for meeting in upcoming:
            nxt = await self.meetings.next_occurrence(meeting, now)
            if nxt is not None:
                soon.append((nxt, meeting))
        if soon:
            lines.append(f"Upcoming meetings ({len(soon)}):")
        for nxt, meeting in sorted(soon, key=lambda pair: pair[0]):
            repeat = " (repeats)" if meeting.rrule else ""
            lines.append(f"`{meeting.id}` {meeting.title} · {time_markup(nxt, zone_name)}{repeat}")
        if soon:
            feed = self.meetings.feed_url(command.channel)
            buttons.append(Button("Subscribe in your calendar", feed))
        if not lines:
            return _reply(
                "No active huddles or upcoming meetings in this channel. "
                "Type `/meet` to start one or `/meet schedule ...` to plan one."
            )
        return CommandResult(replies=[Reply("\n".join(lines), tuple(buttons))])

    async def _hosted(
        self, command: Command, huddle_id: str, refusal: str
    ) -> Huddle | CommandResult:
        """The open huddle ``huddle_id`` if ``command`` comes from its host, else the answer
        saying why not (``refusal`` is formatted with ``host`` and ``id``)."""
        huddle = await self.huddles.store.huddle(huddle_id)
        if huddle is None or huddle.channel.platform != command.channel.platform:
            return _reply(f"There is no huddle `{huddle_id}`. `/meet list` shows ids.")
        if not huddle.is_open:
            return _reply(f"Huddle `{huddle.id}` has already ended.")
        if huddle.host_id != command.user.id:
            return _reply(refusal.format(host=huddle.host_name, id=huddle.id))
        return huddle

    async def _end(self, command: Command, request: parser.EndHuddle) -> CommandResult:
        huddle = await self._hosted(
            command, request.huddle_id, "Only {host}, who started `{id}`, can end it."
        )
        if isinstance(huddle, CommandResult):
            return huddle
        await self.huddles.end(huddle.id, "ended by host")
        return _reply(f"Ended “{huddle.title}” (`{huddle.id}`).")

    async def _host_only(
        self,
        command: Command,
        request: parser.LockHuddle
        | parser.HostLink
        | parser.SetLobby
        | parser.GuestLink
        | parser.SetPasscode,
    ) -> CommandResult:
        huddle = await self._hosted(
            command, request.huddle_id, "Only {host}, who hosts `{id}`, can do that."
        )
        if isinstance(huddle, CommandResult):
            return huddle
        by = command.user.name
        named = f"“{huddle.title}” (`{huddle.id}`)"
        if isinstance(request, parser.HostLink):
            if request.to is None or request.to == command.user.id:
                return CommandResult(replies=[self.huddles.host_reply(huddle)])
            await self.huddles.share_hosting(huddle, request.to, by)
            return _reply(
                f"Sent them a host link for {named}, privately. They join with it as a host "
                "(if they are in the call already, they rejoin with it)."
            )
        if isinstance(request, parser.LockHuddle):
            await self.huddles.set_room(huddle, by, locked=request.locked)
            if request.locked:
                return _reply(
                    f"Locked {named}: nobody new gets in, except with a host link (or into the "
                    f"waiting room, if it is on). `/meet unlock {huddle.id}` opens it again."
                )
            return _reply(f"Unlocked {named}: the card's link works again.")
        if isinstance(request, parser.SetLobby):
            await self.huddles.set_room(huddle, by, lobby=request.on)
            if request.on:
                return _reply(f"The waiting room of {named} is on: a host lets each newcomer in.")
            return _reply(
                f"The waiting room of {named} is off: the card's link lets people straight in "
                "(guests still wait)."
            )
        lobby_note = (
            ""
            if huddle.lobby
            else f" The waiting room is now on (`/meet lobby off {huddle.id}` lets channel "
            "members straight in; guests always wait)."
        )
        if isinstance(request, parser.GuestLink):
            await self.huddles.set_room(huddle, by, lobby=True)
            return CommandResult(
                replies=[
                    Reply(
                        f"A guest link for {named}, for people outside this channel: they wait "
                        f"until a host lets them in.{lobby_note}",
                        (Button("Guest link", self.huddles.join_url(huddle.id, "guest")),),
                    )
                ]
            )
        if request.off:
            await self.huddles.set_passcode(huddle, None)
            return _reply(f"{named} no longer asks for a passcode.")
        code = request.code or f"{secrets.randbelow(10**6):06d}"
        await self.huddles.set_passcode(huddle, code)
        await self.huddles.set_room(huddle, by, lobby=True)
        return _reply(
            f"The passcode of {named} is now `{code}`: the join page asks for it (your host "
            f"link does not). Give it to the people you invite.{lobby_note}"
        )

    async def _share(self, command: Command, request: parser.ShareHuddle) -> CommandResult:
        huddle = await self.huddles.store.huddle(request.huddle_id)
        if huddle is None:
            return _reply(f"There is no huddle `{request.huddle_id}`.")
        if not huddle.is_open:
            return _reply(f"Huddle `{huddle.id}` has already ended.")
        if huddle.channel == command.channel:
            return _reply(f"`{huddle.id}` already lives in this channel.")
        shared, delivered = await self.huddles.share(huddle, command.channel, command.user)
        if not shared:
            return _reply(f"`{huddle.id}` is already posted here.")
        if delivered is None:
            return _reply(f"Shared `{huddle.id}` here; its card is on its way.")
        return CommandResult(posted=[delivered])

    async def _schedule(self, command: Command, request: parser.ScheduleMeeting) -> CommandResult:
        zone_name = await self.meetings.zone_for(command.channel, command.user)
        try:
            when = parse_when(request.text, self.huddles.clock(), zone_name)
        except WhenError as exc:
            return _reply(str(exc))
        meeting, delivered = await self.meetings.schedule(command.channel, command.user, when)
        await self.replan(meeting.id)
        replies = []
        if delivered is None:
            replies.append(Reply(f"Scheduled `{meeting.id}`; its card is on its way."))
        if zone_name == "UTC" and command.user.zone is None:
            replies.append(
                Reply(
                    "I read that time as UTC. Set your zone with `/meet tz Europe/Berlin` "
                    "(or the channel's with `/meet tz channel ...`)."
                )
            )
        return CommandResult(replies=replies, posted=[delivered] if delivered else [])

    async def _zone(self, command: Command, request: parser.SetZone) -> CommandResult:
        store = self.huddles.store
        channel = command.channel
        if request.zone is None:
            mine = await self.meetings.zone_for(channel, command.user)
            here = await self.meetings.channel_zone(channel)
            return _reply(f"Your time zone: {mine}. This channel's: {here}.")
        try:
            zone(request.zone)
        except WhenError as exc:
            return _reply(str(exc))
        if request.channel:
            await store.set_zone("channel", channel.platform, channel.channel_id, request.zone)
            return _reply(f"This channel's time zone is now {request.zone}.")
        await store.set_zone("user", channel.platform, command.user.id, request.zone)
        local = self.huddles.clock().astimezone(ZoneInfo(request.zone))
        return _reply(f"Your time zone is now {request.zone} (it is {local:%H:%M} there).")

    async def _meeting(self, command: Command, meeting_id: str) -> Meeting | CommandResult:
        meeting = await self.huddles.store.meeting(meeting_id)
        if meeting is None or meeting.channel.platform != command.channel.platform:
            return _reply(f"There is no meeting `{meeting_id}`. `/meet list` shows ids.")
        if meeting.state != "scheduled":
            return _reply(f"Meeting `{meeting_id}` was cancelled.")
        return meeting

    async def _cancel(self, command: Command, request: parser.CancelMeeting) -> CommandResult:
        meeting = await self._meeting(command, request.meeting_id)
        if isinstance(meeting, CommandResult):
            return meeting
        if meeting.host_id != command.user.id:
            return _reply(f"Only {meeting.host_name}, who scheduled `{meeting.id}`, can cancel it.")
        occurrence = None
        if request.occurrence is not None:
            now = self.huddles.clock()
            if request.occurrence == "next":
                occurrence = await self.meetings.next_occurrence(meeting, now)
            else:
                # The date is the canceller's: read on their calendar.
                zone_name = await self.meetings.zone_for(command.channel, command.user)
                occurrence = await self._occurrence_on(meeting, request.occurrence, now, zone_name)
            if occurrence is None:
                return _reply(f"`{meeting.id}` has no occurrence then. `/meet list` shows when.")
        message = await self.meetings.cancel(meeting, occurrence)
        await self.replan(meeting.id)
        return _reply(message)

    async def _occurrence_on(
        self, meeting: Meeting, day: str, now: datetime, zone_name: str
    ) -> datetime | None:
        try:
            wanted = date.fromisoformat(day)
        except ValueError:
            return None
        zone_info = ZoneInfo(zone_name)
        start = datetime.combine(wanted, datetime.min.time(), zone_info) - timedelta(seconds=1)
        for occurrence in self.meetings.occurrences(meeting, max(start, now), count=2):
            if occurrence.astimezone(zone_info).date() == wanted:
                return occurrence
        return None

    async def _agenda(self, command: Command, request: parser.AddAgendaItem) -> CommandResult:
        meeting = await self._meeting(command, request.meeting_id)
        if isinstance(meeting, CommandResult):
            return meeting
        await self.meetings.add_agenda_item(meeting, request.item)
        return _reply(f"Added to the agenda of “{meeting.title}”: {request.item}")

    async def _rsvp(self, command: Command, request: parser.Answer) -> CommandResult:
        meeting = await self._meeting(command, request.meeting_id)
        if isinstance(meeting, CommandResult):
            return meeting
        await self.meetings.rsvp(meeting, command.user, request.answer)
        word = "going" if request.answer == "yes" else "not going"
        return _reply(f"Noted: you are {word} to “{meeting.title}”.")


def _reply(text: str) -> CommandResult:
    return CommandResult(replies=[Reply(text)])
