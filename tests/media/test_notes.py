"""The shared notes as a CRDT: concurrent edits merge, garbage and overlong notes are refused.

Browsers send Yjs updates (``notes-update``); a client that sends whole texts (``notes``) has its
text merged as the edit it makes. Here with pycrdt standing in for the browser's Yjs (the same
binary format); the browser side is in ``tests/test_product_browser.py``.
"""

from __future__ import annotations

import base64

import pytest
from pycrdt import Doc, Text

from media.contrib.client import HuddleClient
from media.messages import MAX_NOTES
from media.notes import BadUpdate, SharedNotes
from tests.media.media_app import media_app
from tests.media.test_signaling import WITHIN, people

pytestmark = pytest.mark.timeout(60)


class Replica:
    """A client's copy of the notes, as the browser keeps it."""

    def __init__(self, state: str) -> None:
        self.doc: Doc[Text] = Doc()
        self.text = self.doc.get("notes", type=Text)
        self.doc.apply_update(base64.b64decode(state))

    def type_at(self, index: int, words: str) -> str:
        """Insert ``words`` (ASCII) at ``index``; the update, base64."""
        before = self.doc.get_state()
        self.text.insert(index, words)
        return base64.b64encode(self.doc.get_update(before)).decode()

    def merge(self, update: str) -> None:
        self.doc.apply_update(base64.b64decode(update))


def test_two_edits_made_at_once_both_survive_in_either_order() -> None:
    server = SharedNotes("Agenda\n", max_chars=MAX_NOTES)
    state = base64.b64encode(server.state()).decode()
    alice, bob = Replica(state), Replica(state)
    from_alice = alice.type_at(7, "DECISION: ship\n")
    from_bob = bob.type_at(7, "TODO @bob docs\n")
    assert server.apply(base64.b64decode(from_bob))
    assert server.apply(base64.b64decode(from_alice))
    alice.merge(from_bob)
    bob.merge(from_alice)
    assert str(alice.text) == str(bob.text) == server.text
    assert "DECISION: ship\n" in server.text and "TODO @bob docs\n" in server.text


def test_a_whole_text_is_merged_as_the_edit_it_makes_not_over_the_others() -> None:
    server = SharedNotes("héllo 😀 world", max_chars=MAX_NOTES)
    bob = Replica(base64.b64encode(server.state()).decode())
    from_bob = bob.type_at(0, ">> ")
    # A whole-text client changes the end, not knowing of Bob's edit.
    update = server.replace("héllo 😀 wide world!")
    assert update is not None and server.replace(server.text) is None
    server.apply(base64.b64decode(from_bob))
    assert server.text == ">> héllo 😀 wide world!"
    bob.merge(base64.b64encode(update).decode())
    assert str(bob.text) == server.text


def test_garbage_and_overlong_notes_are_refused_and_change_nothing() -> None:
    server = SharedNotes("keep me", max_chars=20)
    with pytest.raises(BadUpdate, match="could not be read"):
        server.apply(b"\x01\x02garbage")
    big = Replica(base64.b64encode(server.state()).decode()).type_at(0, "x" * 30)
    with pytest.raises(BadUpdate, match="limited to 20"):
        server.apply(base64.b64decode(big))
    assert server.text == "keep me"


async def test_updates_reach_the_others_and_newcomers_start_from_the_merged_state() -> None:
    async with media_app() as app, people(app, "Alice", "Bob") as (alice, bob):
        welcome = next(m for m in alice.messages if m["type"] == "welcome")
        replica = Replica(welcome["notesState"])
        mark = len(bob.messages)
        await alice.send({"type": "notes-update", "update": replica.type_at(0, "DECISION: go\n")})
        relayed = await bob.expect("notes-update", after=mark, within=WITHIN)
        assert relayed["by"] == "Alice"
        # A whole-text client's edit merges with it.
        await bob.send({"type": "notes", "text": "DECISION: go\nTODO @bob ship"})
        await alice.expect("notes-update", within=WITHIN)
        async with HuddleClient(app.join_url(), "Carol", width=160, height=120) as carol:
            await carol.join()
            late = next(m for m in carol.messages if m["type"] == "welcome")
            assert late["notes"] == "DECISION: go\nTODO @bob ship"
            assert str(Replica(late["notesState"]).text) == late["notes"]
        for frame, words in (
            ({"type": "notes-update", "update": "not base64!"}, "base64"),
            ({"type": "notes-update", "update": "AQJnYXJiYWdl"}, "could not be read"),
            ({"type": "notes-update"}, "`update`"),
        ):
            mark = len(alice.messages)
            await alice.send(frame)
            error = await alice.expect("error", after=mark, within=WITHIN)
            assert error["code"] == "bad_field" and words in error["message"], error
        assert app.server.participants("h1")  # everyone still in
