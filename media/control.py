"""The control channel between `huddle serve` and its media workers (:mod:`media.workers`).

One JSON object per line over the worker's stdin (main -> worker) and stdout (worker -> main). The
first line main writes is the worker's :class:`WorkerConfig`, secret included: it never appears on
a command line or in the environment. After that:

- worker -> main: ``ready`` {port, pid}, ``gate`` {id, huddle}, ``event`` {event, ids_issued},
  ``stats`` {stats, ids_issued, id when asked}, ``done`` {id}, ``log`` {level, logger, msg},
  ``closed``;
- main -> worker: ``gate-answer`` {id, access or error}, ``end`` {id, huddle, reason},
  ``stats?`` {id}, ``close``.

Both ends check every message they read (:func:`decode`, the ``*_from_wire`` functions) and drop
a malformed one with a log line: a bug on one side never crashes the other.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from dataclasses import field as default
from datetime import datetime
from typing import Any

from media.events import (
    ChatPosted,
    EndRequested,
    HuddleAccess,
    MediaEvent,
    NotesChanged,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantRemoved,
    RoomChanged,
)
from media.network import MediaNetwork, PortRange
from media.server import MediaStats

#: Header on relayed signaling sockets naming the browser's address (for the worker's logs: it
#: sees every socket come from main on 127.0.0.1).
PEER_HEADER = "X-Huddle-Peer"

#: Longest line either side reads (gate answers and notes events carry up to 20,000 characters).
MAX_LINE_BYTES = 1024 * 1024


class ControlError(ValueError):
    """A control message that is not what the protocol says; ``str(error)`` says what is wrong."""


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs, sent as the first line on its stdin."""

    index: int
    secret: bytes
    public_url: str
    max_participants: int
    ice_servers: list[str]
    #: The worker numbers its participants first_participant_id, + participant_id_step, ...: ids
    #: stay unique across workers and across a worker's restarts.
    first_participant_id: int
    participant_id_step: int
    #: CPU to pin the worker to (None: wherever the scheduler likes).
    core: int | None
    log_level: int
    #: Seconds between the stats snapshots a worker sends on its own.
    stats_interval: float
    #: Seconds the product's clock is ahead of the system's (tests run the product at fixed
    #: instants): join links expire and events happen by the same clock in every process.
    clock_offset: float = 0.0
    #: What the worker's ICE sockets advertise and where they bind (media.network).
    public_ips: list[str] = default(default_factory=list)
    udp_ports: list[int] | None = None

    def network(self) -> MediaNetwork:
        """The worker's :class:`media.network.MediaNetwork`."""
        ports = PortRange(*self.udp_ports) if self.udp_ports else None
        return MediaNetwork(public_ips=tuple(self.public_ips), udp_ports=ports)

    def to_wire(self) -> dict[str, Any]:
        """The JSON object of the first line."""
        wire = asdict(self)
        wire["secret"] = self.secret.hex()
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> WorkerConfig:
        """Parse the first line; :class:`ControlError` if a field is missing or mistyped."""
        try:
            config = cls(**{**data, "secret": bytes.fromhex(data["secret"])})
        except (KeyError, TypeError, ValueError) as exc:
            raise ControlError(f"bad worker config: {exc}") from exc
        core = config.core
        if not (
            isinstance(config.index, int)
            and isinstance(config.public_url, str)
            and isinstance(config.max_participants, int)
            and isinstance(config.ice_servers, list)
            and all(isinstance(url, str) for url in config.ice_servers)
            and isinstance(config.first_participant_id, int)
            and isinstance(config.participant_id_step, int)
            and config.participant_id_step >= 1
            and (core is None or isinstance(core, int))
            and isinstance(config.log_level, int)
            and isinstance(config.stats_interval, int | float)
            and isinstance(config.clock_offset, int | float)
            and isinstance(config.public_ips, list)
            and all(isinstance(ip, str) for ip in config.public_ips)
            and (
                config.udp_ports is None
                or (
                    isinstance(config.udp_ports, list)
                    and len(config.udp_ports) == 2
                    and all(isinstance(port, int) for port in config.udp_ports)
                )
            )
        ):
            raise ControlError("bad worker config: a field has the wrong type")
        return config


def encode(message: dict[str, Any]) -> bytes:
    """One message as one line."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """One line as a message: a JSON object with a string ``type``."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ControlError(f"not JSON: {line[:80]!r}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ControlError(f"not a typed JSON object: {line[:80]!r}")
    return message


def field(message: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """``message[name]``, checked to be of ``kind`` (bool is not taken for int)."""
    value = message.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ControlError(f"`{message.get('type')}` needs `{name}` of type {kind}")
    return value


# -- payloads ------------------------------------------------------------------------------------


def access_to_wire(access: HuddleAccess | None) -> dict[str, Any] | None:
    """The gate's answer as JSON (None: no such huddle)."""
    if access is None:
        return None
    return {**asdict(access), "removed_seats": sorted(access.removed_seats)}


def access_from_wire(data: object) -> HuddleAccess | None:
    """The gate's answer back from JSON."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ControlError("`access` must be an object or null")
    access = {"type": "access", **data}
    return HuddleAccess(
        huddle_id=field(access, "huddle_id", str),
        title=field(access, "title", str),
        open=field(access, "open", bool),
        closed_reason=field(access, "closed_reason", str),
        notes=field(access, "notes", str),
        locked=field(access, "locked", bool),
        lobby=field(access, "lobby", bool),
        passcode=field(access, "passcode", str),
        chat_to_notes=field(access, "chat_to_notes", bool),
        removed_seats=frozenset(_strings(access, "removed_seats")),
    )


def _strings(message: dict[str, Any], name: str) -> list[str]:
    values = field(message, name, list)
    strings = [value for value in values if isinstance(value, str)]
    if len(strings) != len(values):
        raise ControlError(f"`{name}` must be a list of strings")
    return strings


def event_to_wire(event: MediaEvent) -> dict[str, Any]:
    """A media event as JSON (``at`` in ISO 8601 with its offset)."""
    kind = {
        ParticipantJoined: "joined",
        ParticipantLeft: "left",
        NotesChanged: "notes",
        ParticipantRemoved: "removed",
        RoomChanged: "room",
        EndRequested: "end",
        ChatPosted: "chat",
    }
    return {"kind": kind[type(event)], **asdict(event), "at": event.at.isoformat()}


def event_from_wire(data: object) -> MediaEvent:
    """A media event back from JSON."""
    if not isinstance(data, dict):
        raise ControlError("`event` must be an object")
    event = {"type": "event", **data}
    try:
        at = datetime.fromisoformat(field(event, "at", str))
    except ValueError as exc:
        raise ControlError(f"bad `at`: {exc}") from exc
    if at.tzinfo is None:
        raise ControlError("`at` must carry its UTC offset")
    huddle_id = field(event, "huddle_id", str)
    kind = event.get("kind")
    if kind == "notes":
        return NotesChanged(huddle_id, field(event, "text", str), field(event, "by", str), at)
    if kind == "room":
        locked, lobby = field(event, "locked", bool), field(event, "lobby", bool)
        chat_to_notes = field(event, "chat_to_notes", bool)
        return RoomChanged(huddle_id, locked, lobby, field(event, "by", str), at, chat_to_notes)
    if kind == "end":
        return EndRequested(huddle_id, field(event, "by", str), at)
    participant = field(event, "participant_id", str)
    name = field(event, "name", str)
    if kind == "joined":
        return ParticipantJoined(huddle_id, participant, name, at)
    if kind == "left":
        return ParticipantLeft(huddle_id, participant, name, at)
    if kind == "chat":
        return ChatPosted(huddle_id, participant, name, field(event, "text", str), at)
    if kind == "removed":
        seat, by = field(event, "seat", str), field(event, "by", str)
        return ParticipantRemoved(huddle_id, participant, name, seat, by, at)
    raise ControlError(f"unknown event kind {kind!r}")


def stats_to_wire(stats: MediaStats) -> dict[str, int]:
    """A stats snapshot as JSON."""
    return asdict(stats)


def stats_from_wire(data: object) -> MediaStats:
    """A stats snapshot back from JSON: every counter an integer, none missing."""
    if not isinstance(data, dict):
        raise ControlError("`stats` must be an object")
    counters = {"type": "stats", **data}
    return MediaStats(**{f.name: field(counters, f.name, int) for f in fields(MediaStats)})
