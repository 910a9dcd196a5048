"""Who is speaking: read from the audio level publishers put in their packets, never decoded.

Every audio packet from a browser carries its level (RFC 6464 ``ssrc-audio-level``: 0 is the
loudest, 127 silence). The forwarder adds each one up as it passes (two additions per audio
packet; nothing per copy sent), and a room looks at the sums every :data:`WINDOW_SECONDS`:
whoever is loud enough over a window is *speaking*; the *speaker* (shown large) changes only
once someone else has been the loudest for :data:`SWITCH_WINDOWS` windows in a row, and stays
through silences, so that the view does not flicker with every breath.
"""

from __future__ import annotations

from dataclasses import dataclass

#: How often levels are looked at, in seconds (at most this many ``speaker`` messages a second).
WINDOW_SECONDS = 0.25
#: Mean loudness (127 - level) over a window above which someone starts speaking: a level of
#: 50 -dBov or louder, where speech sits; a quiet room's noise stays below. They stop only once
#: they fall :data:`HYSTERESIS` below it, so a voice hovering at the threshold does not flicker.
SPEAKING_LOUDNESS = 127 - 50
HYSTERESIS = 10
#: Windows in a row someone must be the loudest before they become the speaker.
SWITCH_WINDOWS = 2


@dataclass
class ActiveSpeaker:
    """The speaker and who is speaking, from one window of loudness after another."""

    speaker: str | None = None
    speaking: frozenset[str] = frozenset()
    _leader: str | None = None
    _leading_for: int = 0

    def update(self, loudness: dict[str, float]) -> bool:
        """Take one window's mean loudness per participant; True if anything shown changed."""
        speaking = frozenset(
            who
            for who, loud in loudness.items()
            if loud >= SPEAKING_LOUDNESS - (HYSTERESIS if who in self.speaking else 0)
        )
        loudest = max(speaking, key=lambda who: loudness[who], default=None)
        if loudest is not None and loudest == self._leader:
            self._leading_for += 1
        else:
            self._leader, self._leading_for = loudest, 1 if loudest is not None else 0
        speaker = self.speaker
        if self._leader is not None and self._leading_for >= SWITCH_WINDOWS:
            speaker = self._leader
        changed = speaker != self.speaker or speaking != self.speaking
        self.speaker, self.speaking = speaker, speaking
        return changed

    def forget(self, participant_id: str) -> bool:
        """``participant_id`` left; True if that changed what is shown."""
        changed = participant_id == self.speaker or participant_id in self.speaking
        if participant_id == self.speaker:
            self.speaker = None
        self.speaking = self.speaking - {participant_id}
        if self._leader == participant_id:
            self._leader, self._leading_for = None, 0
        return changed
