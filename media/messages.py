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

#: ``type`` values only a host (or co-host) may send; anyone else gets ``forbidden``.
HOST_TYPES = frozenset(
    {
        "mute",
        "mute-all",
        "ask-camera-off",
        "allow-unmute",
        "let-speak",
        "remove",
        "lock",
        "role",
        "end",
        "lobby",
        "admit",
        "admit-all",
        "deny",
        "lower-hand",
        "chat-to-notes",
    }
)

#: ``type`` values a client may send.
CLIENT_TYPES = (
    frozenset(
        {
            "join",
            "offer",
            "answer",
            "state",
            "notes",
            "leave",
            "ping",
            "hand",
            "react",
            "chat",
            "share",
            "resume",
            "notes-update",
            "check",
            "view",
        }
    )
    | HOST_TYPES
)

#: Longest chat message, in characters.
MAX_CHAT = 2000

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
    "forbidden",
    "locked",
    "removed",
    "no_such_participant",
    "denied",
    "bad_passcode",
    "cannot_resume",
]

#: A participant's role in the call: ``host`` (from the host link, or passed on), ``cohost`` (made
#: one by a host: the same powers), ``participant`` (the card's link), ``guest``.
CallRole = Literal["host", "cohost", "participant", "guest"]

MediaKind = Literal["audio", "video"]

#: What a participant publishes: their microphone (``audio``), camera (``video``), and while they
#: present, their screen (``screen``, video) and the audio that comes with it (``screen-audio``).
Track = Literal["audio", "video", "screen", "screen-audio"]

#: The media kind of each track.
TRACK_KINDS: dict[Track, MediaKind] = {
    "audio": "audio",
    "video": "video",
    "screen": "video",
    "screen-audio": "audio",
}

#: The tracks of a screen share.
SCREEN_TRACKS: tuple[Track, ...] = ("screen", "screen-audio")


class ParticipantInfo(TypedDict):
    """A participant as others see it."""

    id: str
    name: str
    audio: bool
    video: bool
    role: CallRole
    #: False while a host keeps them muted: the server forwards none of their audio.
    speak: bool
    #: When they raised their hand (a number that orders raised hands), or None.
    hand: int | None
    #: Whether they are presenting their screen now.
    screen: bool


class StreamInfo(TypedDict):
    """What one receiving transceiver (by ``mid``) carries."""

    mid: str
    participant: str
    kind: MediaKind
    track: Track


class PublishInfo(TypedDict):
    """A section of a server offer that the client sends on (the server receives): answer it
    ``sendonly`` and attach the track while presenting."""

    mid: str
    track: Track


class HuddleInfo(TypedDict):
    """The huddle, as told in ``welcome``."""

    id: str
    title: str


class RoomInfo(TypedDict):
    """What hosts decided for the whole call."""

    locked: bool
    #: Whether people a host muted may unmute themselves.
    unmuteAllowed: bool
    #: Waiting room on: a host lets each newcomer in.
    lobby: bool
    #: The chat log goes into the notes thread when the huddle ends.
    chatToNotes: bool


class ChatEntry(TypedDict):
    """One chat message, as everyone receives it (``at``: ISO 8601 UTC)."""

    type: Literal["chat"]
    id: int
    participant: str
    name: str
    text: str
    at: str


#: The reactions a participant may send (shown briefly over their tile).
REACTIONS = frozenset({"👍", "👏", "😂", "❤️", "🎉", "😮"})


class ReactionMessage(TypedDict):
    """Someone reacted."""

    type: Literal["reaction"]
    participant: str
    emoji: str


class SpeakerMessage(TypedDict):
    """Who is speaking now, and who is shown as the speaker (stays through silences)."""

    type: Literal["speaker"]
    participant: str | None
    speaking: list[str]


class WaiterInfo(TypedDict):
    """Someone in the waiting room, as hosts see them."""

    id: str
    name: str
    role: CallRole


class WaitingMessage(TypedDict):
    """You are in the waiting room: a host will let you in (nothing about who is inside)."""

    type: Literal["waiting"]
    huddle: HuddleInfo


class LobbyMessage(TypedDict):
    """To hosts: who is in the waiting room now, in arrival order; ``arrived`` is new."""

    type: Literal["lobby"]
    waiting: list[WaiterInfo]
    arrived: WaiterInfo | None


class WelcomeMessage(TypedDict):
    """Reply to ``join``."""

    type: Literal["welcome"]
    you: ParticipantInfo
    participants: list[ParticipantInfo]
    huddle: HuddleInfo
    notes: str
    room: RoomInfo
    #: The chat so far (the latest messages), oldest first.
    chat: list[ChatEntry]
    #: The shared notes' Yjs document (base64 of one update); ``notes`` is its text.
    notesState: str
    #: What a new socket sends (``resume``) to take this place back after a drop.
    resume: str
    #: True when this is the answer to ``resume``: same participant, a fresh media connection.
    resumed: bool


class RoomMessage(TypedDict):
    """A host changed the room's settings."""

    type: Literal["room"]
    room: RoomInfo


class NoticeMessage(TypedDict):
    """A host did something everyone should know about ("Alice muted everyone")."""

    type: Literal["notice"]
    text: str


class MutedMessage(TypedDict):
    """A host muted you: turn your microphone off (the server already told the others)."""

    type: Literal["muted"]
    by: str
    #: Whether you may unmute yourself again.
    speak: bool


class CameraOffAskedMessage(TypedDict):
    """A host asks you to turn your camera off."""

    type: Literal["camera-off-asked"]
    by: str


class MaySpeakMessage(TypedDict):
    """A host let you speak again (you may unmute yourself)."""

    type: Literal["may-speak"]
    by: str


class AnswerMessage(TypedDict):
    """The server's answer to the client's publishing offer."""

    type: Literal["answer"]
    sdp: str


class OfferMessage(TypedDict):
    """A server-initiated renegotiation."""

    type: Literal["offer"]
    sdp: str
    streams: list[StreamInfo]
    #: The sections the server receives on beyond the first offer's (a screen share's).
    publish: list[PublishInfo]


class CheckAnswerMessage(TypedDict):
    """The server's side of a pre-join connectivity check."""

    type: Literal["check-answer"]
    sdp: str


class StreamsMessage(TypedDict):
    """The mid -> participant mapping changed without renegotiation."""

    type: Literal["streams"]
    streams: list[StreamInfo]


class LayersMessage(TypedDict):
    """Which of the publisher's simulcast layers of ``track`` anybody receives: the page keeps
    those encodings active and pauses the others (none at all while nobody watches)."""

    type: Literal["layers"]
    track: Literal["video"]
    active: list[str]


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


class NotesUpdateMessage(TypedDict):
    """Someone else changed the shared notes: a Yjs update (base64) to merge."""

    type: Literal["notes-update"]
    update: str
    by: str


class PongMessage(TypedDict):
    """Reply to ``ping``."""

    type: Literal["pong"]


ServerMessage = (
    WelcomeMessage
    | AnswerMessage
    | OfferMessage
    | StreamsMessage
    | LayersMessage
    | ParticipantJoinedMessage
    | ParticipantLeftMessage
    | ParticipantUpdatedMessage
    | EndedMessage
    | ErrorMessage
    | NotesUpdateMessage
    | CheckAnswerMessage
    | PongMessage
    | RoomMessage
    | NoticeMessage
    | MutedMessage
    | CameraOffAskedMessage
    | MaySpeakMessage
    | WaitingMessage
    | LobbyMessage
    | ReactionMessage
    | ChatEntry
    | SpeakerMessage
)
