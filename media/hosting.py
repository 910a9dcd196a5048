"""What hosts do in a call: mute, keep muted, remove, lock, make co-hosts, end for all.

Every control is a signaling message (PROTOCOL.md, "Host controls") checked here against the
sender's role in the room, which came from their signed join link or from another host, never
from the client. Without the right the sender gets ``error`` ``forbidden`` and nothing changes.
Keeping someone muted is enforced where media flows: :meth:`media.rooms.Room.sync` stops
forwarding their audio, so a modified client that ignores ``muted`` is still not heard.
"""

from __future__ import annotations

import logging
from typing import Any

from media.errors import ProtocolError
from media.events import EndRequested, ParticipantRemoved, RoomChanged
from media.messages import HOST_TYPES
from media.participants import Participant, Waiter
from media.rooms import Room

log = logging.getLogger(__name__)

#: What each control is called in a ``forbidden`` answer.
_DOING = {
    "mute": "mute someone",
    "mute-all": "mute everyone",
    "ask-camera-off": "ask someone to turn their camera off",
    "allow-unmute": "decide who may unmute",
    "let-speak": "let someone speak",
    "remove": "remove someone",
    "lock": "lock the huddle",
    "role": "make co-hosts",
    "end": "end the huddle for everyone",
    "lobby": "turn the waiting room on or off",
    "admit": "let people in",
    "admit-all": "let people in",
    "deny": "turn people away",
    "lower-hand": "lower someone's hand",
    "chat-to-notes": "decide whether the chat goes into the notes",
}


def handle(room: Room, sender: Participant, kind: str, data: dict[str, Any]) -> None:
    """Carry out the host control ``kind`` from ``sender``, or raise :class:`ProtocolError`."""
    assert kind in HOST_TYPES
    if not sender.is_host:
        raise ProtocolError("forbidden", f"Only a host can {_DOING[kind]}.")
    log.info("host_control huddle=%s by=%s type=%s", room.id, sender.id, kind)
    if kind == "mute":
        _mute(room, sender, [_target(room, data)])
        room.tell_everyone(
            {"type": "notice", "text": f"{sender.name} muted {_target(room, data).name}."}
        )
    elif kind == "mute-all":
        _mute(room, sender, [p for p in room.participants.values() if not p.is_host])
        room.tell_everyone({"type": "notice", "text": f"{sender.name} muted everyone."})
    elif kind == "ask-camera-off":
        target = _target(room, data)
        target.connection.send({"type": "camera-off-asked", "by": sender.name})
        sender.connection.send(
            {"type": "notice", "text": f"You asked {target.name} to turn their camera off."}
        )
    elif kind == "allow-unmute":
        _allow_unmute(room, sender, _flag(data, "allowed"))
    elif kind == "let-speak":
        target = _target(room, data)
        _let_speak(room, sender, target)
        room.tell_everyone({"type": "notice", "text": f"{sender.name} let {target.name} speak."})
    elif kind == "remove":
        _remove(room, sender, _target(room, data))
    elif kind == "lock":
        if set_locked(room, _flag(data, "locked"), sender.name):
            room.emit(_changed(room, sender))
    elif kind == "lobby":
        if set_lobby(room, _flag(data, "on"), sender.name):
            room.emit(_changed(room, sender))
    elif kind == "admit":
        room.admit(_waiter(room, data))
    elif kind == "admit-all":
        for waiter in list(room.waiting.values()):
            room.admit(waiter)  # stops, saying so, once the huddle is full
    elif kind == "deny":
        room.deny(_waiter(room, data), sender.name)
    elif kind == "lower-hand":
        room.raise_hand(_target(room, data), False)
    elif kind == "chat-to-notes":
        on = _flag(data, "on")
        if on != room.chat_to_notes:
            room.chat_to_notes = on
            room.tell_everyone({"type": "room", "room": room.room_info()})
            word = "will go" if on else "will not go"
            text = f"{sender.name}: the chat {word} into the meeting notes."
            room.tell_everyone({"type": "notice", "text": text})
            room.emit(_changed(room, sender))
    elif kind == "role":
        _set_role(room, sender, _target(room, data), data.get("role"))
    elif kind == "end":
        room.emit(EndRequested(room.id, sender.name, room.now()))
    else:
        raise ProtocolError("bad_state", f"`{kind}` is not handled by this server.")


def _changed(room: Room, sender: Participant) -> RoomChanged:
    return RoomChanged(
        room.id, room.locked, room.lobby, sender.name, room.now(), room.chat_to_notes
    )


def set_locked(room: Room, locked: bool, by: str) -> bool:
    """Lock or unlock ``room`` and tell everyone; False if it already was."""
    if locked == room.locked:
        return False
    room.locked = locked
    room.tell_everyone({"type": "room", "room": room.room_info()})
    word = "locked" if locked else "unlocked"
    room.tell_everyone({"type": "notice", "text": f"{by} {word} the huddle."})
    return True


def set_lobby(room: Room, on: bool, by: str) -> bool:
    """Turn the waiting room on or off and tell everyone; off lets in all who wait but guests.

    False if it already was so.
    """
    if on == room.lobby:
        return False
    room.lobby = on
    if not on and not room.locked:  # locked: they stay out (and wait, as guests do)
        for waiter in list(room.waiting.values()):
            if not room.must_wait(waiter.role) and len(room.participants) < room.max_participants:
                room.admit(waiter)
    room.tell_everyone({"type": "room", "room": room.room_info()})
    word = "turned the waiting room on" if on else "turned the waiting room off"
    room.tell_everyone({"type": "notice", "text": f"{by} {word}."})
    return True


def _waiter(room: Room, data: dict[str, Any]) -> Waiter:
    waiter_id = data.get("participant")
    if not isinstance(waiter_id, str):
        raise ProtocolError("bad_field", "`participant` must be the waiting person's id.")
    waiter = room.waiting.get(waiter_id)
    if waiter is None:
        raise ProtocolError(
            "no_such_participant", f"Nobody with id {waiter_id[:20]!r} is waiting to join."
        )
    return waiter


def _target(room: Room, data: dict[str, Any]) -> Participant:
    participant_id = data.get("participant")
    if not isinstance(participant_id, str):
        raise ProtocolError("bad_field", "`participant` must be a participant id (a string).")
    target = room.participants.get(participant_id)
    if target is None:
        raise ProtocolError(
            "no_such_participant", f"Nobody with id {participant_id[:20]!r} is in this huddle."
        )
    return target


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if not isinstance(value, bool):
        raise ProtocolError("bad_field", f"`{name}` must be true or false.")
    return value


def _mute(room: Room, sender: Participant, targets: list[Participant]) -> None:
    silenced = False
    for target in targets:
        keep_muted = not room.unmute_allowed and not target.is_host
        if not target.audio and target.may_speak == (not keep_muted):
            continue
        target.audio = False
        if keep_muted and target.may_speak:
            target.may_speak = False
            room.silence(target)
            silenced = True
        target.connection.send({"type": "muted", "by": sender.name, "speak": target.may_speak})
        room.updated(target)
    if silenced:
        room.resync_all()


def _let_speak(room: Room, sender: Participant, target: Participant) -> None:
    if target.may_speak:
        return
    target.may_speak = True
    target.connection.send({"type": "may-speak", "by": sender.name})
    room.updated(target)
    room.resync_all()


def _allow_unmute(room: Room, sender: Participant, allowed: bool) -> None:
    if allowed == room.unmute_allowed:
        return
    room.unmute_allowed = allowed
    changed = False
    for participant in room.participants.values():
        if participant.is_host:
            continue
        if allowed and not participant.may_speak:
            participant.may_speak = True
            participant.connection.send({"type": "may-speak", "by": sender.name})
            room.updated(participant)
            changed = True
        elif not allowed and not participant.audio and participant.may_speak:
            # Already muted: they stay so until a host lets them speak.
            participant.may_speak = False
            room.silence(participant)
            room.updated(participant)
            changed = True
    if changed:
        room.resync_all()
    room.tell_everyone({"type": "room", "room": room.room_info()})
    text = (
        f"{sender.name} let participants unmute themselves."
        if allowed
        else f"{sender.name} turned off unmuting: a host lets people speak."
    )
    room.tell_everyone({"type": "notice", "text": text})


def _remove(room: Room, sender: Participant, target: Participant) -> None:
    if target is sender:
        raise ProtocolError("bad_state", "You cannot remove yourself; use Leave.")
    if target.role == "host" and sender.role != "host":
        raise ProtocolError("forbidden", f"{target.name} is the host; co-hosts cannot remove them.")
    # The seat is barred: every tab of that browser goes, and it cannot be let in again.
    if target.seat:
        room.removed_seats.add(target.seat)
    same_seat = [
        p for p in room.participants.values() if target.seat and p.seat == target.seat
    ] or [target]
    message = f"{sender.name} removed you from this huddle."
    for gone in same_seat:
        room.emit(
            ParticipantRemoved(room.id, gone.id, gone.name, gone.seat, sender.name, room.now())
        )
        gone.connection.send(
            {"type": "error", "code": "removed", "message": message, "fatal": True}
        )
        gone.connection.close()
        room.spawn(room.remove(gone, "removed by a host"))
    for waiter in [w for w in room.waiting.values() if target.seat and w.seat == target.seat]:
        room.deny(waiter, sender.name)
    room.tell_everyone({"type": "notice", "text": f"{sender.name} removed {target.name}."})


def _set_role(room: Room, sender: Participant, target: Participant, role: object) -> None:
    if role not in ("cohost", "participant"):
        raise ProtocolError("bad_field", '`role` must be "cohost" or "participant".')
    if target.role == "host" and role == "participant":
        raise ProtocolError("bad_state", f"{target.name} is the host; only co-hosts step down.")
    if target.role == "host" or (role == "cohost") == (target.role == "cohost"):
        return  # nothing to change
    target.role = "cohost" if role == "cohost" else target.link_role
    if target.is_host:
        target.may_speak = True
    room.updated(target)
    room.resync_all()
    if target.is_host and room.waiting:
        room.tell_lobby()
    if not target.is_host:
        room.pass_host()  # a co-host who stepped down may have been the last one
    text = (
        f"{sender.name} made {target.name} a co-host."
        if target.is_host
        else f"{sender.name} took co-host from {target.name}."
    )
    room.tell_everyone({"type": "notice", "text": text})
