"""How the core's neutral posts become Discord messages, and how their ids travel back to the core.

A :class:`MessageRef` is the opaque ``ref`` the core stores for a post: Discord needs the channel as
well as the message id to edit a message, and a thread started from a message shares its id, so
``"{channel_id}/{message_id}"`` is all the adapter ever needs to find a post again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import discord

from adapters.discord.components import PostButtons
from bot.types import Post, Reply, plain_times, render_times

#: Discord's limits (https://discord.com/developers/docs/resources/message#create-message).
CONTENT_LIMIT = 2000
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
THREAD_NAME_LIMIT = 100
NONCE_LIMIT = 25

#: Discord's blurple: the card reads as the bot's own, not an alert.
CARD_COLOUR = discord.Colour(0x5865F2)

#: Never ping anyone: names in cards come from whatever people typed on the join page.
NO_MENTIONS = discord.AllowedMentions.none()

_MASKED_LINK = re.compile(r"\]\(")
#: What the core writes as markdown on purpose: code spans (ids, commands) and time markup.
_CORE_MARKUP = re.compile(r"`[^`\n]+`|<t:\d{1,12}\|[^>]*>")


@dataclass(frozen=True)
class MessageRef:
    """Where a message lives: its channel (or thread) and its id."""

    channel_id: int
    message_id: int

    def __str__(self) -> str:
        return f"{self.channel_id}/{self.message_id}"

    @classmethod
    def parse(cls, ref: str) -> MessageRef:
        """Read back a ref made by ``str()``; a malformed one is a bug upstream, so it raises."""
        channel, sep, message = ref.partition("/")
        if not sep or not channel.isdigit() or not message.isdigit():
            raise ValueError(f"not a Discord message ref: {ref!r}")
        return cls(int(channel), int(message))

    @property
    def thread_id(self) -> int:
        """The id of the thread started from this message (Discord gives it the message's id)."""
        return self.message_id


def nonce_for(key: str) -> str:
    """The post's idempotency key as a Discord nonce: at most 25 characters, stable across retries.

    With ``enforce_nonce`` Discord returns the message already created with this nonce instead of
    posting a second one, so a send retried after a lost response lands once.
    """
    return hashlib.sha256(key.encode()).hexdigest()[:NONCE_LIMIT]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unmask(text: str) -> str:
    # The core never writes masked links; participant names might (`[x](https://evil)`), and an
    # embed would render them as a disguised link. A zero-width space breaks the syntax only.
    return _MASKED_LINK.sub("]\u200b(", text)


def _escape(text: str) -> str:
    """Markdown in what people typed (names, titles) shows as typed; the core's own stays live.

    A participant called ``*bob*`` or ``> x`` would otherwise turn the card bold or quoted.
    """
    pieces: list[str] = []
    at = 0
    for markup in _CORE_MARKUP.finditer(text):
        pieces.append(discord.utils.escape_markdown(text[at : markup.start()]))
        pieces.append(markup.group())
        at = markup.end()
    pieces.append(discord.utils.escape_markdown(text[at:]))
    return "".join(pieces)


def _body(text: str) -> str:
    """Message text: times as Discord timestamps, shown in each reader's own zone and language."""
    return render_times(_escape(_unmask(text)), lambda unix, _: f"<t:{unix}:F>")


def _title(text: str) -> str:
    """Embed titles render no markdown, timestamps included: they get the fallback text."""
    return plain_times(_unmask(text))


@dataclass(frozen=True)
class Rendered:
    """A post as Discord message fields; every field is always set so an edit replaces them all."""

    content: str | None
    embeds: list[discord.Embed]
    view: PostButtons


def render_post(post: Post) -> Rendered:
    """A titled post (a huddle card) becomes an embed; an untitled one is plain text."""
    # An empty view is sent too: on an edit it clears the buttons of an ended huddle's card.
    view = PostButtons(post.buttons)
    text = _body(post.text)
    if post.title:
        embed = discord.Embed(
            title=_clip(_title(post.title), EMBED_TITLE_LIMIT),
            description=_clip(text, EMBED_DESCRIPTION_LIMIT) or None,
            colour=CARD_COLOUR,
        )
        return Rendered(content=None, embeds=[embed], view=view)
    if len(text) <= CONTENT_LIMIT:
        return Rendered(content=text, embeds=[], view=view)
    # Too long for a message body: an embed description holds twice as much.
    embed = discord.Embed(description=_clip(text, EMBED_DESCRIPTION_LIMIT))
    return Rendered(content=None, embeds=[embed], view=view)


def render_reply(reply: Reply) -> tuple[str, PostButtons]:
    """An ephemeral answer: text plus buttons (`/meet list` offers a Join per huddle)."""
    return _clip(_body(reply.text), CONTENT_LIMIT), PostButtons(reply.buttons)


def thread_name(title: str, text: str) -> str:
    """The name of the notes thread under a post: its title, else its first line."""
    name = _title(title) or plain_times(next(iter(text.splitlines()), ""))
    return _clip(name.strip() or "Huddle notes", THREAD_NAME_LIMIT)
