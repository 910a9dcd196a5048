"""Wire shapes of the signaling protocol (media/PROTOCOL.md) as typed dictionaries.

Client messages are untrusted and are checked field by field in :mod:`media.signaling`; these types
describe what the server sends, so that every message built in :mod:`media.rooms` has its fields
checked by mypy.
"""

from __future__ import annotations

from typing import Literal, TypedDict

#: Largest text frame a client may send, in bytes (PROTOCOL.md, error ``too_large``).
MAX_MESSAGE_BYTES = 64 * 1024

#: An ``answer`` grows with the huddle (Chromium: ~850 bytes per receiving m-line), so while a
#: server offer is outstanding the limit grows by this much per m-line in it.
SDP_BYTES_PER_MLINE = 2 * 1024

#: ``type`` values a client may send.
CLIENT_TYPES = frozenset({"join", "offer", "answer", "state", "notes", "leave", "ping"})

#: Longest shared notes, in characters.
MAX_NOTES = 20_000

ErrorCode = Literal[
    "bad_json",
    "too_large",
    "unknown_type",
    "bad_field",
    "bad_state",
    "bad_sdp",
    "rate_limited",
    "huddle_full",
    "no_media_port",
    "media_unreachable",
]

MediaKind = Literal["audio", "video"]


class ParticipantInfo(TypedDict):
    """A participant as others see it."""

    id: str
    name: str
    audio: bool
    video: bool


class StreamInfo(TypedDict):
    """What one receiving transceiver (by ``mid``) carries."""

    mid: str
    participant: str
    kind: MediaKind


class HuddleInfo(TypedDict):
    """The huddle, as told in ``welcome``."""

    id: str
    title: str


class WelcomeMessage(TypedDict):
    """Reply to ``join``."""

    type: Literal["welcome"]
    you: ParticipantInfo
    participants: list[ParticipantInfo]
    huddle: HuddleInfo
    notes: str


class AnswerMessage(TypedDict):
    """The server's answer to the client's publishing offer."""

    type: Literal["answer"]
    sdp: str


class OfferMessage(TypedDict):
    """A server-initiated renegotiation."""

    type: Literal["offer"]
    sdp: str
    streams: list[StreamInfo]


class StreamsMessage(TypedDict):
    """The mid -> participant mapping changed without renegotiation."""

    type: Literal["streams"]
    streams: list[StreamInfo]


class ParticipantJoinedMessage(TypedDict):
    """Someone joined."""

    type: Literal["participant-joined"]
    participant: ParticipantInfo


class ParticipantLeftMessage(TypedDict):
    """Someone left."""

    type: Literal["participant-left"]
    id: str


class ParticipantUpdatedMessage(TypedDict):
    """Someone's audio/video state changed."""

    type: Literal["participant-updated"]
    participant: ParticipantInfo


class EndedMessage(TypedDict):
    """The huddle ended; the socket closes after this."""

    type: Literal["ended"]
    reason: str


class _ErrorRequired(TypedDict):
    type: Literal["error"]
    code: ErrorCode
    message: str


class ErrorMessage(_ErrorRequired, total=False):
    """The last client message was refused."""

    fatal: bool


class NotesMessage(TypedDict):
    """Someone else changed the shared notes (the whole text)."""

    type: Literal["notes"]
    text: str
    by: str


class PongMessage(TypedDict):
    """Reply to ``ping``."""

    type: Literal["pong"]


ServerMessage = (
    WelcomeMessage
    | AnswerMessage
    | OfferMessage
    | StreamsMessage
    | ParticipantJoinedMessage
    | ParticipantLeftMessage
    | ParticipantUpdatedMessage
    | EndedMessage
    | ErrorMessage
    | NotesMessage
    | PongMessage
)
