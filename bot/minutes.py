"""After the call: the meeting notes as a thread under the card, action items, follow-ups, feedback.

When a huddle ends, its notes are posted as a reply under the huddle's card: times in the channel's
zone, attendees with their time in the call, the agenda, decisions and action items read from
the shared notes. Each action item gets a follow-up in that thread at its due time (default: the
next working day, 10:00 in the owner's zone) until `/meet done <id>` closes it.
"""

from __future__ import annotations

import logging
import statistics
from datetime import UTC

from bot.delivery import Publisher
from bot.huddles import new_huddle_id
from bot.meetings import MeetingService, PlannedJob
from bot.notes import action_line, chat_text, due_moment, notes_text, read_notes
from bot.records import ActionItem, Huddle
from bot.store import Store
from bot.types import Button, ChannelRef, Clock, Post, User, time_markup, utc_now
from media.events import MediaEvent, NotesChanged

log = logging.getLogger("huddle.minutes")


class Minutes:
    """Notes, action items and feedback of finished huddles."""

    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        meetings: MeetingService,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.meetings = meetings
        self.clock = clock

    # While the call runs

    async def notes_changed(self, huddle_id: str, text: str, by: str) -> None:
        """Save the shared notes as they are typed."""
        await self.store.save_notes(huddle_id, text, by, self.clock())

    async def on_media_event(self, event: MediaEvent) -> None:
        """Save the shared notes when the media core says they changed."""
        if isinstance(event, NotesChanged):
            await self.notes_changed(event.huddle_id, event.text, event.by)

    async def feedback(self, huddle_id: str, participant_id: str, name: str, score: int) -> None:
        """Record a 1-5 rating and refresh the summary in the huddle's thread."""
        if not 1 <= score <= 5:
            return
        await self.store.save_feedback(huddle_id, participant_id, name, score, self.clock())
        huddle = await self.store.huddle(huddle_id)
        if huddle is None:
            return
        await self._publish_feedback(huddle)

    async def _publish_feedback(self, huddle: Huddle) -> None:
        # One post: the 1-5 prompt, with the running summary once someone answered.
        scores = await self.store.feedback_scores(huddle.id)
        text = "Rate it 1 (poor) to 5 (great)."
        if scores:
            people = "person" if len(scores) == 1 else "people"
            text += (
                f"\nSo far: {statistics.mean(scores):.1f} / 5 from {len(scores)} {people}"
                f" ({', '.join(str(s) for s in sorted(scores, reverse=True))})"
            )
        await self.publisher.publish(
            Post(
                key=f"huddle/{huddle.id}/feedback",
                channel=huddle.channel,
                title="How was this call?",
                text=text,
                buttons=tuple(
                    Button(str(score), action=f"rate:{huddle.id}:{score}") for score in range(1, 6)
                ),
                thread_of=huddle.card_key,
            ),
            wait=0,
        )

    # When it ends

    async def huddle_ended(self, huddle: Huddle) -> None:
        """Post the notes under the card and start following up the action items."""
        stays = await self.store.attendance(huddle.id)
        zone = await self.meetings.channel_zone(huddle.channel)
        meeting = await self.store.meeting(huddle.meeting_id) if huddle.meeting_id else None
        if not stays and meeting is None:
            return  # nobody came to an ad-hoc huddle: nothing to write down
        notes = await self.store.notes(huddle.id)
        now = self.clock()
        read = read_notes(notes)
        items: list[tuple[ActionItem, str]] = []
        for draft in read.actions:
            # "by today" is the owner's today, and 10:00 is the owner's 10:00.
            owner_zone = await self._owner_zone(huddle.channel, draft.owner)
            item = ActionItem(
                id=new_huddle_id(),
                huddle_id=huddle.id,
                meeting_id=huddle.meeting_id,
                channel=huddle.channel,
                owner=draft.owner,
                text=draft.text,
                due_at=due_moment(draft.due, now, owner_zone).astimezone(UTC),
                state="open",
            )
            await self.store.add_action_item(item, now)
            items.append((item, owner_zone))
        text = notes_text(
            huddle,
            stays,
            zone,
            meeting.agenda if meeting else (),
            notes,
            read,
            items,
            recording_url=None,
        )
        await self._under_cards(huddle, "notes", f"Meeting notes: {huddle.title}", text)
        await self._post_chat(huddle, zone)
        if items:
            await self._refresh_open_items(huddle)
            if meeting is not None:
                # The next occurrence's agenda card (often up already) lists what is still open.
                await self.meetings.refresh_agenda(meeting.id)
        await self._publish_feedback(huddle)
        log.info("notes posted huddle=%s actions=%d", huddle.id, len(items))

    async def _post_chat(self, huddle: Huddle, zone: str) -> None:
        """The call's chat as its own post under the notes (unless a host said not to)."""
        if not huddle.chat_to_notes:
            return
        log_lines = await self.store.chat_log(huddle.id)
        if not log_lines:
            return
        title = f"Chat during the call: {huddle.title}"
        await self._under_cards(huddle, "chat", title, chat_text(log_lines, zone))

    async def _under_cards(self, huddle: Huddle, name: str, title: str, text: str) -> None:
        """Post ``text`` under the huddle's card in every channel it was posted in."""
        for channel in [huddle.channel, *await self.store.shares(huddle.id)]:
            card_key = huddle.card_key_in(channel)
            await self.publisher.publish(
                Post(
                    key=f"{card_key}/{name}",
                    channel=channel,
                    title=title,
                    text=text,
                    thread_of=card_key,
                ),
                wait=0,
            )

    async def _refresh_open_items(self, huddle: Huddle) -> None:
        items = await self.store.action_items_of(huddle_id=huddle.id)
        still_open = [item for item in items if item.state == "open"]
        lines = [
            action_line(item, await self._owner_zone(item.channel, item.owner))
            for item in still_open
        ]
        text = (
            "Still open:\n" + "\n".join(lines) + "\n`/meet done <id>` closes one."
            if still_open
            else f"All {len(items)} action items are done."
        )
        await self.publisher.publish(
            Post(
                key=f"huddle/{huddle.id}/followups",
                channel=huddle.channel,
                title="Action items",
                text=text,
                thread_of=huddle.card_key,
            ),
            wait=0,
        )

    async def _owner_zone(self, channel: ChannelRef, owner: str) -> str:
        # Owners are named in the notes as @name; the name is their user id on the platform.
        return await self.meetings.zone_for(channel, User(owner, owner))

    # Follow-ups

    async def plan_item(self, item_id: str) -> list[PlannedJob]:
        """The follow-up job an open action item needs (none once done or followed up)."""
        item = await self.store.action_item(item_id)
        if item is None or item.state != "open":
            return []
        if await self.store.post_ref(f"action/{item.id}/followup") is not None:
            return []
        return [PlannedJob("followup", item.id, item.due_at, item.due_at)]

    async def follow_up(self, item_id: str) -> None:
        """At the due time: remind the owner in the meeting's thread."""
        item = await self.store.action_item(item_id)
        if item is None or item.state != "open":
            return
        huddle = await self.store.huddle(item.huddle_id)
        if huddle is None:
            return
        due = time_markup(item.due_at, await self._owner_zone(item.channel, item.owner))
        await self.publisher.publish(
            Post(
                key=f"action/{item.id}/followup",
                channel=item.channel,
                title="Follow-up",
                text=f"@{item.owner}: {item.text} was due {due}. "
                f"Type `/meet done {item.id}` when it is finished.",
                thread_of=huddle.card_key,
            ),
            wait=0,
        )
        log.info("follow-up posted item=%s owner=%s", item.id, item.owner)

    async def done(self, item_id: str, by: User) -> str:
        """Close an action item; return what to tell the person."""
        item = await self.store.action_item(item_id)
        if item is None:
            return f"There is no action item `{item_id}`."
        if item.state == "done":
            return f"`{item.id}` was already done."
        await self.store.set_action_state(item.id, "done", self.clock())
        huddle = await self.store.huddle(item.huddle_id)
        if huddle is not None:
            await self._refresh_open_items(huddle)
        if item.meeting_id is not None:
            await self.meetings.refresh_agenda(item.meeting_id)
        return f"Done: {item.text} (`{item.id}`)."
