"""How a huddle looks in a channel: the card, updated in place as people come and go."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.records import Attendance, Huddle
from bot.types import Button, ChannelRef, Post


def duration_text(span: timedelta) -> str:
    """'23 min', '1 h 5 min'; anything under a minute reads '1 min'."""
    minutes = max(1, round(span.total_seconds() / 60))
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def _names(names: Sequence[str]) -> str:
    unique = list(dict.fromkeys(names))
    return ", ".join(unique)


def huddle_card(
    huddle: Huddle,
    stays: Sequence[Attendance],
    join_url: str | None,
    channel: ChannelRef | None = None,
) -> Post:
    """The card for ``huddle`` in ``channel`` (default: its home), given its attendance log."""
    channel = channel or huddle.channel
    lines = [f"Hosted by {huddle.host_name} · id `{huddle.id}`"]
    if huddle.locked and huddle.is_open:
        lines[0] += " · locked"
    if huddle.lobby and huddle.is_open:
        lines[0] += " · waiting room"
    if channel != huddle.channel:
        lines[0] += f" · shared from #{huddle.channel.channel_id} ({huddle.channel.platform})"
    if huddle.is_open:
        present = [s.name for s in stays if s.left_at is None]
        if present:
            count = len(present)
            lines.append(f"{count} in the huddle: {_names(present)}")
        else:
            lines.append("Nobody in yet" if not stays else "Everyone left · closing soon")
        buttons: tuple[Button, ...] = (Button("Join", join_url),) if join_url else ()
    else:
        if huddle.first_joined_at and huddle.ended_at:
            attended = _names([s.name for s in stays])
            lines.append(
                f"Ended, {duration_text(huddle.ended_at - huddle.first_joined_at)}"
                f" · attended: {attended}"
            )
        else:
            lines.append("Ended, nobody joined")
        buttons = ()
    return Post(
        key=huddle.card_key_in(channel),
        channel=channel,
        title=huddle.title,
        text="\n".join(lines),
        buttons=buttons,
    )


def list_line(huddle: Huddle, present: int, now: datetime) -> str:
    """One line of `/meet list`."""
    age = duration_text(now - huddle.created_at)
    people = {0: "nobody in", 1: "1 participant"}.get(present, f"{present} participants")
    return f"`{huddle.id}` {huddle.title} · {people} · started {age} ago by {huddle.host_name}"
