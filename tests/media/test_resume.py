"""Coming back after a dropped connection, with scripted aiortc participants.

A participant whose socket drops keeps their place for a grace period; a new socket that sends
``resume`` with the token from ``welcome`` takes it back with a fresh media connection. Nobody
sees them leave or join, the bot hears of one stay. The browser does this by itself
(``test_resume_browser.py``, through a network namespace); here the protocol.
"""

from __future__ import annotations

import pytest

from media.contrib.client import HuddleClient
from media.events import ParticipantJoined, ParticipantLeft
from tests.media.media_app import media_app
from tests.media.test_screen_share import screen_frames_grow
from tests.media.test_signaling import WITHIN, keeps_receiving, people

pytestmark = pytest.mark.timeout(120)


async def test_a_dropped_socket_resumes_the_same_participant_and_nobody_sees_a_leave() -> None:
    async with media_app() as app, people(app, "Alice", "Bob") as (alice, bob):
        assert bob.you is not None
        bob_id = bob.you["id"]
        await bob.drop_socket()  # the Wi-Fi changed: the socket is gone
        await bob.resume()
        assert bob.you["id"] == bob_id
        welcome = [m for m in bob.messages if m["type"] == "welcome"][-1]
        assert welcome["resumed"] is True
        assert [p["name"] for p in welcome["participants"]] == ["Alice"]
        await keeps_receiving(alice, bob)
        await keeps_receiving(bob, alice)
        assert not [m for m in alice.messages if m["type"] in ("participant-left",)]
        assert sum(m["type"] == "participant-joined" for m in alice.messages) == 1
        joined = [e for e in app.events if isinstance(e, ParticipantJoined)]
        assert [e.name for e in joined] == ["Alice", "Bob"]
        assert not [e for e in app.events if isinstance(e, ParticipantLeft)]
        assert app.server.stats().participants == 2


async def test_a_resume_while_the_server_still_holds_the_old_socket_takes_over() -> None:
    async with media_app() as app, people(app, "Alice", "Bob") as (alice, bob):
        assert bob.you is not None
        old_ws = bob._ws
        await bob.resume(close_old=False)  # the server has not noticed anything yet
        await keeps_receiving(alice, bob)
        await keeps_receiving(bob, alice)
        assert old_ws is not None
        await bob.wait_for(lambda: old_ws.closed, within=WITHIN)  # the server closed it
        assert not [e for e in app.events if isinstance(e, ParticipantLeft)]


async def test_a_presenter_who_resumes_presents_again_when_they_ask() -> None:
    async with media_app() as app, people(app, "Alice", "Bob") as (alice, bob):
        await alice.share()
        await screen_frames_grow(bob, alice)
        await alice.resume()
        assert alice.you is not None
        # Their screen went with the old connection; the others were told.
        await bob.wait_for(lambda: bob.participants[alice.you["id"]]["screen"] is False)
        await alice.share()
        await screen_frames_grow(bob, alice)


async def test_a_wrong_or_late_resume_is_refused_and_a_fresh_join_still_works() -> None:
    async with (
        media_app(resume_grace=1.0) as app,
        people(app, "Alice", "Bob") as (alice, bob),
    ):
        async with HuddleClient(app.join_url(), "Mallory") as mallory:
            await mallory.connect()
            await mallory.send({"type": "resume", "token": "not-a-token"})
            refused = await mallory.expect("error", within=WITHIN)
            assert refused["code"] == "cannot_resume" and refused["fatal"] is True
        assert bob.you is not None
        token = bob.resume_token
        await bob.drop_socket()  # gone for longer than the grace period
        await bob.pc.close()
        await alice.expect("participant-left", within=WITHIN)
        async with HuddleClient(app.join_url(), "Bob") as again:
            await again.connect()
            await again.send({"type": "resume", "token": token})
            late = await again.expect("error", within=WITHIN)
            assert late["code"] == "cannot_resume" and "Join again" in late["message"]
        async with HuddleClient(app.join_url(), "Bob", width=160, height=120) as fresh:
            await fresh.join()
            await keeps_receiving(alice, fresh)
