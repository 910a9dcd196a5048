"""The shared notes of a call as a CRDT (Yjs's, through pycrdt): edits made at once all survive.

Browsers keep a Yjs document and exchange its binary updates through the server (``notes-update``);
the server keeps the merged document, hands its state to each newcomer, and gives the core the
merged text to save. A client that only knows whole texts (``notes``) still works: its new text is
turned into the edit from the current one (what changed between the common start and end), so
it merges with everyone else's instead of overwriting them.
"""

from __future__ import annotations

from pycrdt import Doc, Text

#: The name of the text inside the document; the browser uses the same.
TEXT_NAME = "notes"


class BadUpdate(ValueError):
    """An update that is not a Yjs update, or that would make the notes too long."""


class SharedNotes:
    """One call's notes: a Yjs document with one text."""

    def __init__(self, text: str = "", *, max_chars: int) -> None:
        self._doc: Doc[Text] = Doc()
        self._text = self._doc.get(TEXT_NAME, type=Text)
        self._max_chars = max_chars
        if text:
            self._text.insert(0, text)

    @property
    def text(self) -> str:
        """The merged text now."""
        return str(self._text)

    def state(self) -> bytes:
        """The whole document as one update (what a newcomer starts from)."""
        return self._doc.get_update()

    def apply(self, update: bytes) -> bool:
        """Merge a client's update; whether the text changed. Refuses garbage and overlong notes.

        The update is tried on a copy first: a CRDT cannot take back what it merged.
        """
        trial: Doc[Text] = Doc()
        trial_text = trial.get(TEXT_NAME, type=Text)
        try:
            trial.apply_update(self.state())
            trial.apply_update(update)
        except Exception as exc:  # yrs raises its own errors for undecodable updates
            raise BadUpdate("The notes update could not be read.") from exc
        if len(str(trial_text)) > self._max_chars:
            raise BadUpdate(f"Notes are limited to {self._max_chars} characters.")
        before = self.text
        self._doc.apply_update(update)
        return self.text != before

    def replace(self, text: str) -> bytes | None:
        """Make the text ``text`` by the smallest edit; the update that does it (None: no change).

        yrs counts positions in UTF-8 bytes, so the edit is found in characters and applied at
        the matching byte offsets.
        """
        old = self.text
        if text == old:
            return None
        start = 0
        while start < min(len(old), len(text)) and old[start] == text[start]:
            start += 1
        end_old, end_new = len(old), len(text)
        while end_old > start and end_new > start and old[end_old - 1] == text[end_new - 1]:
            end_old -= 1
            end_new -= 1
        at = len(old[:start].encode())
        removed = len(old[start:end_old].encode())
        before = self._doc.get_state()
        with self._doc.transaction():
            if removed:
                del self._text[at : at + removed]
            if end_new > start:
                self._text.insert(at, text[start:end_new])
        update: bytes = self._doc.get_update(before)
        return update
