"""Scheduled meetings: agenda cards, RSVPs, reminders, and the huddle that starts at the time.

What should happen when is derived from the database (meetings, their exceptions, which posts
already landed), so the scheduler can be rebuilt from it at any time and replays are harmless:
every post has a deterministic key, and the outbox turns a repeat into an edit, never a duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from bot.cards import duration_text
from bot.delivery import Publisher
from bot.huddles import HuddleService, new_huddle_id
from bot.records import Meeting, Rsvp
from bot.store import Store
from bot.types import (
    Button,
    ChannelRef,
    Clock,
    Delivered,
    MeetingSnapshot,
    Post,
    User,
    time_markup,
    utc_now,
)
from bot.when import Schedule

log = logging.getLogger("huddle.meetings")

#: The agenda of a recurring meeting's next occurrence is posted this long before it.
AGENDA_LEAD = timedelta(hours=24)
#: A reminder that fires later than this after its time says it is late.
LATE_AFTER = timedelta(seconds=5)
DEFAULT_REMIND = timedelta(minutes=15)


def occurrence_key(moment: datetime) -> str:
    """A compact, sortable id for one occurrence: its UTC start."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_occurrence_key(key: str) -> datetime:
    """The inverse of :func:`occurrence_key`."""
    return datetime.strptime(key, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class PlannedJob:
    """One thing the scheduler must do: ``kind`` (agenda, remind, start) at ``run_at``."""

    kind: str
    meeting_id: str
    occurrence: datetime
    run_at: datetime

    @property
    def job_id(self) -> str:
        return f"{self.kind}:{self.meeting_id}:{occurrence_key(self.occurrence)}"


class MeetingService:
    """Everything about scheduled meetings that is not the scheduler itself."""

    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        huddles: HuddleService,
        meeting_url: Callable[[str], str],
        calendar_url: Callable[[str], str],
        feed_url: Callable[[ChannelRef], str],
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.huddles = huddles
        self.meeting_url = meeting_url
        self.calendar_url = calendar_url
        self.feed_url = feed_url
        #: RSVPs counted by a platform itself (Discord event subscribers), by meeting, platform.
        self.external_interest: dict[str, dict[str, int]] = {}
        self.clock = clock

    # Zones

    async def zone_for(self, channel: ChannelRef, user: User) -> str:
        """The zone for ``user``'s times: their own, the platform's, the channel's, or UTC."""
        return (
            await self.store.zone_of("user", channel.platform, user.id)
            or user.zone
            or await self.store.zone_of("channel", channel.platform, channel.channel_id)
            or "UTC"
        )

    async def channel_zone(self, channel: ChannelRef) -> str:
        """The channel's zone (UTC until someone sets one)."""
        return await self.store.zone_of("channel", channel.platform, channel.channel_id) or "UTC"

    # Occurrences

    def occurrences(self, meeting: Meeting, after: datetime, count: int = 1) -> list[datetime]:
        """The next ``count`` starts strictly after ``after`` (UTC), by the rule alone."""
        if meeting.rrule is None:
            return [meeting.starts_at] if meeting.starts_at > after else []
        zone = ZoneInfo(meeting.zone)
        rule = rrulestr(meeting.rrule, dtstart=meeting.local_start.replace(tzinfo=zone))
        found: list[datetime] = []
        cursor = after.astimezone(zone)
        while len(found) < count:
            nxt = rule.after(cursor)
            if nxt is None:
                break
            # Wall times skipped by a DST jump normalise through UTC, like the first start.
            found.append(nxt.astimezone(UTC))
            cursor = nxt
        return found

    async def next_occurrence(self, meeting: Meeting, after: datetime) -> datetime | None:
        """The next start after ``after`` that was not cancelled or already started."""
        states = await self.store.occurrence_states(meeting.id)
        cursor = after
        for _ in range(400):
            found = self.occurrences(meeting, cursor)
            if not found:
                return None
            start = found[0]
            if start not in states:
                return start
            cursor = start
        return None

    async def plan(self, meeting_id: str) -> list[PlannedJob]:
        """The jobs that should be pending for this meeting now (empty when nothing is left)."""
        meeting = await self.store.meeting(meeting_id)
        if meeting is None or meeting.state != "scheduled":
            return []
        now = self.clock()
        # A start that is due but has not happened yet (the server was down) is still next.
        occurrence = await self.next_occurrence(
            meeting, now - timedelta(seconds=meeting.duration_s)
        )
        if occurrence is None:
            return []
        jobs: list[PlannedJob] = []
        agenda_key = self._agenda_key(meeting, occurrence)
        if await self.store.post_ref(agenda_key) is None:
            jobs.append(
                PlannedJob("agenda", meeting.id, occurrence, max(now, occurrence - AGENDA_LEAD))
            )
        remind_at = occurrence - timedelta(seconds=meeting.remind_s)
        # Scheduled closer than its reminder lead: no reminder, the agenda card just went up.
        if (
            remind_at > meeting.created_at
            and await self.store.post_ref(self._reminder_key(meeting, occurrence)) is None
        ):
            jobs.append(PlannedJob("remind", meeting.id, occurrence, remind_at))
        jobs.append(PlannedJob("start", meeting.id, occurrence, occurrence))
        return jobs

    # Commands

    async def schedule(
        self, channel: ChannelRef, host: User, when: Schedule
    ) -> tuple[Meeting, Delivered | None]:
        """Create a meeting and post its agenda card (the scheduler takes it from there)."""
        remind = when.remind if when.remind is not None else DEFAULT_REMIND
        meeting = Meeting(
            id=new_huddle_id(),
            title=when.title or f"{host.name}'s meeting",
            channel=channel,
            host_id=host.id,
            host_name=host.name,
            zone=when.zone,
            local_start=when.start.replace(tzinfo=None),
            starts_at=when.start.astimezone(UTC),
            duration_s=int(when.duration.total_seconds()),
            rrule=when.rrule,
            agenda=when.agenda,
            remind_s=int(remind.total_seconds()),
            state="scheduled",
            created_at=self.clock(),
            lobby=when.lobby,
        )
        await self.store.add_meeting(meeting)
        log.info(
            "meeting scheduled id=%s channel=%s start=%s zone=%s rrule=%s",
            meeting.id,
            channel,
            meeting.starts_at.isoformat(),
            meeting.zone,
            meeting.rrule,
        )
        delivered = await self.post_agenda(meeting.id, meeting.starts_at, wait=5.0)
        await self.mirror(meeting.id)
        return meeting, delivered

    async def cancel(self, meeting: Meeting, occurrence: datetime | None) -> str:
        """Cancel the series, or one occurrence; return a sentence saying what happened."""
        await self.store.touch_meeting(meeting.id, self.clock())
        if occurrence is None or meeting.rrule is None:
            await self.store.set_meeting_state(meeting.id, "cancelled")
            await self._refresh_agenda_cards(meeting.id)
            await self.mirror(meeting.id)
            return f"Cancelled “{meeting.title}” (`{meeting.id}`)."
        await self.store.set_occurrence(meeting.id, occurrence, "cancelled")
        await self._refresh_agenda_cards(meeting.id, only=occurrence)
        await self.mirror(meeting.id)
        return f"Cancelled “{meeting.title}” on {time_markup(occurrence, meeting.zone)}."

    async def add_agenda_item(self, meeting: Meeting, item: str) -> None:
        """Append to the agenda and update the upcoming agenda card."""
        await self.store.set_agenda(meeting.id, (*meeting.agenda, item))
        await self._refresh_agenda_cards(meeting.id)
        await self.mirror(meeting.id)

    async def rsvp(self, meeting: Meeting, user: User, answer: str) -> None:
        """Record an answer and update the card's counts."""
        await self.store.set_rsvp(
            Rsvp(meeting.id, user.id, user.name, answer, user.zone), self.clock()
        )
        await self._refresh_agenda_cards(meeting.id)

    # Jobs (run by the scheduler)

    async def post_agenda(
        self, meeting_id: str, occurrence: datetime, wait: float = 0.0
    ) -> Delivered | None:
        """Post (or refresh) the agenda card for one occurrence."""
        meeting = await self.store.meeting(meeting_id)
        if meeting is None:
            return None
        return await self.publisher.publish(await self._agenda_card(meeting, occurrence), wait=wait)

    async def remind(self, meeting_id: str, occurrence: datetime, due: datetime) -> None:
        """T minus the reminder: post the reminder, and tell the people who said yes directly."""
        meeting = await self.store.meeting(meeting_id)
        now = self.clock()
        if meeting is None or meeting.state != "scheduled":
            return
        if (await self.store.occurrence_states(meeting_id)).get(occurrence):
            return
        if now >= occurrence:
            log.info(
                "reminder skipped: meeting already started id=%s occurrence=%s late_by=%ss",
                meeting_id,
                occurrence.isoformat(),
                int((now - due).total_seconds()),
            )
            return
        late = now - due > LATE_AFTER
        starts = time_markup(occurrence, meeting.zone)
        note = " (late: the bot was offline at reminder time)" if late else ""
        text = f"Starts {starts}, in {duration_text(occurrence - now)}{note}."
        join = Button("Join", self.meeting_url(meeting.id))
        await self.publisher.publish(
            Post(
                key=self._reminder_key(meeting, occurrence),
                channel=meeting.channel,
                title=f"Reminder: {meeting.title}",
                text=text,
                buttons=(join,),
                thread_of=self._agenda_key(meeting, occurrence),
            ),
            wait=0,
        )
        for rsvp in await self.store.rsvps(meeting.id):
            if rsvp.answer != "yes":
                continue
            who = User(rsvp.user_id, rsvp.user_name, rsvp.zone)
            zone = await self.zone_for(meeting.channel, who)
            await self.publisher.publish(
                Post(
                    key=f"{self._reminder_key(meeting, occurrence)}/{rsvp.user_id}",
                    channel=meeting.channel,
                    title=f"Reminder: {meeting.title}",
                    text=f"Starts {time_markup(occurrence, zone)}{note}.",
                    buttons=(join,),
                    to_user=rsvp.user_id,
                ),
                wait=0,
            )
        log.info("reminder posted id=%s occurrence=%s late=%s", meeting_id, occurrence, late)

    async def start(self, meeting_id: str, occurrence: datetime) -> str | None:
        """At T: open the huddle and post "starting now"; return the huddle id."""
        meeting = await self.store.meeting(meeting_id)
        now = self.clock()
        if meeting is None or meeting.state != "scheduled":
            return None
        if (await self.store.occurrence_states(meeting_id)).get(occurrence):
            return None
        if now > occurrence + timedelta(seconds=meeting.duration_s):
            log.info(
                "start skipped: the meeting's time has passed id=%s occurrence=%s",
                meeting_id,
                occurrence.isoformat(),
            )
            await self.store.set_occurrence(meeting.id, occurrence, "missed")
            return None
        huddle_id = new_huddle_id()
        if not await self.store.set_occurrence(meeting.id, occurrence, "started", huddle_id):
            return None  # another scheduler got here first
        host = User(meeting.host_id, meeting.host_name)
        huddle, _ = await self.huddles.create(
            meeting.channel,
            host,
            meeting.title,
            huddle_id=huddle_id,
            meeting_id=meeting.id,
            lobby=meeting.lobby,
        )
        log.info("meeting started id=%s huddle=%s", meeting.id, huddle.id)
        # Whoever scheduled it hosts it: their own link, privately (a direct message).
        host_link = self.huddles.host_reply(huddle)
        await self.publisher.publish(
            Post(
                key=f"{huddle.card_key}/host-link",
                channel=meeting.channel,
                title=f"You host: {meeting.title}",
                text=host_link.text,
                buttons=host_link.buttons,
                to_user=meeting.host_id,
            ),
            wait=0,
        )
        await self._refresh_agenda_cards(meeting.id, only=occurrence)
        await self.mirror(meeting.id)
        return huddle.id

    async def mirror(self, meeting_id: str) -> None:
        """Tell the meeting's platform its state (Discord keeps a scheduled event in step)."""
        meeting = await self.store.meeting(meeting_id)
        if meeting is None:
            return
        nxt = await self.next_occurrence(meeting, self.clock())
        lines = [f"Join: {self.meeting_url(meeting.id)}", f"Host: {meeting.host_name}"]
        if meeting.agenda:
            lines.append("Agenda: " + "; ".join(meeting.agenda))
        await self.publisher.notify(
            MeetingSnapshot(
                meeting_id=meeting.id,
                title=meeting.title,
                channel=meeting.channel,
                description="\n".join(lines),
                starts_at=nxt,
                ends_at=nxt + timedelta(seconds=meeting.duration_s) if nxt else None,
                rrule=meeting.rrule,
                zone=meeting.zone,
                url=self.meeting_url(meeting.id),
                cancelled=meeting.state == "cancelled",
            )
        )

    async def set_external_interest(self, meeting_id: str, platform: str, count: int) -> None:
        """A platform counted who is interested (Discord event subscribers): show it on the card."""
        self.external_interest.setdefault(meeting_id, {})[platform] = max(0, count)
        await self._refresh_agenda_cards(meeting_id)

    # Cards

    def _agenda_key(self, meeting: Meeting, occurrence: datetime) -> str:
        return f"meeting/{meeting.id}/{occurrence_key(occurrence)}/agenda"

    def _reminder_key(self, meeting: Meeting, occurrence: datetime) -> str:
        return f"meeting/{meeting.id}/{occurrence_key(occurrence)}/reminder"

    async def _agenda_card(self, meeting: Meeting, occurrence: datetime) -> Post:
        states = await self.store.occurrence_states(meeting.id)
        state = states.get(occurrence, ("", None))[0]
        cancelled = meeting.state == "cancelled" or state == "cancelled"
        length = duration_text(timedelta(seconds=meeting.duration_s))
        lines = [
            f"{time_markup(occurrence, meeting.zone)} · {length}"
            f" · host {meeting.host_name} · id `{meeting.id}`"
        ]
        if meeting.rrule:
            lines.append(f"Repeats: {describe_rrule(meeting.rrule)} ({meeting.zone})")
        if meeting.agenda:
            lines.append("Agenda:")
            lines.extend(f"{n}. {item}" for n, item in enumerate(meeting.agenda, 1))
        if meeting.rrule:
            carried = [
                item
                for item in await self.store.action_items_of(meeting_id=meeting.id)
                if item.state == "open"
            ]
            if carried:
                lines.append("Open from last time:")
                lines.extend(f"• `{item.id}` @{item.owner}: {item.text}" for item in carried)
        answers = await self.store.rsvps(meeting.id)
        yes = [r.user_name for r in answers if r.answer == "yes"]
        no = [r.user_name for r in answers if r.answer == "no"]
        for platform, count in sorted(self.external_interest.get(meeting.id, {}).items()):
            lines.append(f"Interested on {platform}: {count}")
        if yes or no:
            lines.append(
                f"Going: {len(yes)}"
                + (f" ({', '.join(yes)})" if yes else "")
                + f" · Not going: {len(no)}"
            )
        buttons: tuple[Button, ...] = ()
        if cancelled:
            lines.insert(0, "Cancelled.")
        elif state == "started":
            lines.insert(0, "Started.")
        else:
            buttons = (
                Button("Going", action=f"rsvp:{meeting.id}:yes"),
                Button("Not going", action=f"rsvp:{meeting.id}:no"),
                Button("Add to calendar", url=self.calendar_url(meeting.id)),
            )
        return Post(
            key=self._agenda_key(meeting, occurrence),
            channel=meeting.channel,
            title=f"Scheduled: {meeting.title}",
            text="\n".join(lines),
            buttons=buttons,
        )

    async def refresh_agenda(self, meeting_id: str) -> None:
        """Update the next occurrence's agenda card, if it is posted (its open items changed)."""
        await self._refresh_agenda_cards(meeting_id)

    async def _refresh_agenda_cards(self, meeting_id: str, only: datetime | None = None) -> None:
        meeting = await self.store.meeting(meeting_id)
        if meeting is None:
            return
        if only is not None:
            targets = [only]
        else:
            nxt = await self.next_occurrence(
                meeting, self.clock() - timedelta(seconds=meeting.duration_s)
            )
            targets = [nxt] if nxt else []
        for occurrence in targets:
            if await self.store.post_ref(self._agenda_key(meeting, occurrence)) is not None:
                await self.publisher.publish(await self._agenda_card(meeting, occurrence), wait=0)


_DAY_NAMES = {
    "MO": "Mon",
    "TU": "Tue",
    "WE": "Wed",
    "TH": "Thu",
    "FR": "Fri",
    "SA": "Sat",
    "SU": "Sun",
}


def describe_rrule(rule: str) -> str:
    """'every weekday', 'every Mon', 'every day' for the rules `/meet schedule` writes."""
    if rule == "FREQ=DAILY":
        return "every day"
    days = rule.partition("BYDAY=")[2].split(",")
    if days == ["MO", "TU", "WE", "TH", "FR"]:
        return "every weekday"
    return "every " + ", ".join(_DAY_NAMES.get(day, day) for day in days)
