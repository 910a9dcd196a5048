"""Presenting a screen, with scripted aiortc participants: the screen is a track of its own.

The browser side (getDisplayMedia, the presenter layout) is in ``test_screen_share_browser.py``;
here the protocol: the first share adds receiving sections by renegotiation, the others get the
screen on a slot of its own beside the camera, stopping frees it, sharing again needs no offer.
"""

from __future__ import annotations

import pytest

from media.contrib.client import HuddleClient
from tests.media.media_app import media_app
from tests.media.test_signaling import WITHIN, keeps_receiving, people

pytestmark = pytest.mark.timeout(120)


def screen_of(viewer: HuddleClient, presenter: HuddleClient) -> list[dict[str, object]]:
    """The streams ``viewer`` is told carry ``presenter``'s screen."""
    assert presenter.you is not None
    return [
        s
        for s in viewer.streams.values()
        if s["participant"] == presenter.you["id"] and s["track"] == "screen"
    ]


async def screen_frames_grow(viewer: HuddleClient, presenter: HuddleClient) -> None:
    assert presenter.you is not None
    counters = viewer.received_from(presenter.you["id"])
    before = counters.screen_frames
    await viewer.wait_for(lambda: counters.screen_frames >= before + 3, within=WITHIN)


async def test_a_shared_screen_reaches_everyone_beside_the_camera_and_stops() -> None:
    async with media_app() as app, people(app, "Alice", "Bob", "Carol") as (alice, bob, carol):
        assert alice.you is not None
        await alice.share()
        for viewer in (bob, carol):
            await viewer.wait_for(lambda v=viewer: len(screen_of(v, alice)) == 1, within=WITHIN)
            await screen_frames_grow(viewer, alice)
            await keeps_receiving(viewer, alice)  # the camera goes on beside it
            assert viewer.participants[alice.you["id"]]["screen"] is True
        # Stopping frees the slot: nobody is told of a screen any more, and none arrives.
        await alice.share(False)
        await bob.wait_for(lambda: not screen_of(bob, alice), within=WITHIN)
        await keeps_receiving(bob, alice)
        assert bob.participants[alice.you["id"]]["screen"] is False
        # Sharing again reuses the negotiated section: no new offer to Alice.
        offers = sum(m["type"] == "offer" for m in alice.messages)
        await alice.share()
        await bob.wait_for(lambda: len(screen_of(bob, alice)) == 1, within=WITHIN)
        await screen_frames_grow(bob, alice)
        assert sum(m["type"] == "offer" for m in alice.messages) == offers
        assert not alice.errors() and not bob.errors() and not carol.errors()


async def test_two_people_present_at_once_and_a_late_joiner_gets_both() -> None:
    async with media_app() as app, people(app, "Alice", "Bob") as (alice, bob):
        await alice.share()
        await bob.share()
        await screen_frames_grow(bob, alice)
        await screen_frames_grow(alice, bob)
        async with HuddleClient(app.join_url(), "Dave", width=160, height=120, fps=15) as dave:
            await dave.join()
            for presenter in (alice, bob):
                await dave.wait_for(lambda p=presenter: len(screen_of(dave, p)) == 1, within=WITHIN)
                await screen_frames_grow(dave, presenter)


async def test_a_presenter_who_leaves_takes_the_screen_away() -> None:
    async with media_app() as app, people(app, "Alice", "Bob") as (alice, bob):
        await alice.share()
        await screen_frames_grow(bob, alice)
        await alice.leave()
        await bob.wait_for(lambda: not bob.streams and not bob.participants, within=WITHIN)
