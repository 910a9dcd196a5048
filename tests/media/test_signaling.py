"""Signaling scenarios with scripted aiortc participants against a real MediaServer on 127.0.0.1.

Bad input gets a clear ``error`` and the connection stays; nobody else notices. Bad links and
closed huddles are refused before anything half-works. Joins and leaves reach the bot's listener.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

import pytest

from media import tokens
from media.contrib.client import HuddleClient, JoinError, ReceivedMedia
from media.events import ParticipantJoined, ParticipantLeft
from media.signaling import RATE_LIMIT_PER_SECOND, RateLimiter
from tests.media.media_app import SECRET, MediaApp, media_app

pytestmark = pytest.mark.timeout(120)

#: Seconds any awaited outcome may take: generous, so that a loaded machine is slow, not red.
WITHIN = 15.0


def person(app: MediaApp, name: str) -> HuddleClient:
    """A scripted participant with small synthetic video: these scenarios are not about pixels."""
    return HuddleClient(app.join_url(), name, width=160, height=120, fps=15)


@asynccontextmanager
async def people(app: MediaApp, *names: str) -> AsyncIterator[list[HuddleClient]]:
    """``names`` join huddle h1 one after the other and see each other; all close at the end."""
    async with AsyncExitStack() as stack:
        clients = []
        for name in names:
            client = await stack.enter_async_context(person(app, name))
            await client.join()
            clients.append(client)
        for client in clients:
            for other in clients:
                if other is not client:
                    await keeps_receiving(client, other)
        yield clients


def _snapshot(counters: ReceivedMedia) -> tuple[int, int]:
    return counters.frames_decoded, counters.audio_packets


async def keeps_receiving(
    client: HuddleClient, sender: HuddleClient, within: float = WITHIN
) -> None:
    """``client`` decodes new video frames and gets new audio from ``sender``."""
    assert sender.you is not None
    counters = client.received_from(sender.you["id"])
    frames, audio = _snapshot(counters)
    await client.wait_for(
        lambda: counters.frames_decoded >= frames + 3 and counters.audio_packets >= audio + 5,
        within=within,
    )


def answered(client: HuddleClient, mark: int) -> bool:
    return len(client.messages) > mark


async def ping_until_answered(client: HuddleClient, within: float = WITHIN) -> None:
    """Ping until a pong comes back (a refused ping is answered with ``rate_limited``)."""
    deadline = time.monotonic() + within
    while True:
        mark = len(client.messages)
        await client.send({"type": "ping"})
        await client.wait_for(partial(answered, client, mark), within=within)
        if any(m["type"] == "pong" for m in client.messages[mark:]):
            return
        assert time.monotonic() < deadline, "pings are still refused"
        await asyncio.sleep(0.1)


async def all_keep_receiving(clients: list[HuddleClient]) -> None:
    await asyncio.gather(*(keeps_receiving(a, b) for a in clients for b in clients if a is not b))


async def until(condition: Callable[[], bool], within: float = WITHIN) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# -- joining, leaving, events ---------------------------------------------------------------------


async def test_two_people_see_and_hear_each_other_and_the_listener_hears_of_it() -> None:
    async with media_app() as app, people(app, "Alice", "Bob") as (alice, bob):
        assert alice.you is not None and bob.you is not None
        assert alice.participants == {bob.you["id"]: bob.you}
        assert app.server.participants("h1") == [(alice.you["id"], "Alice"), (bob.you["id"], "Bob")]
        stats = app.server.stats()
        assert (stats.huddles, stats.participants) == (1, 2)
        assert stats.packets_forwarded > 0 and stats.bytes_forwarded > 0
        await until(lambda: len(app.events) == 2)
        assert [(type(e), e.name) for e in app.events] == [
            (ParticipantJoined, "Alice"),
            (ParticipantJoined, "Bob"),
        ]

        await bob.leave()
        left = await alice.expect("participant-left", within=WITHIN)
        assert left["id"] == bob.you["id"]
        await until(lambda: len(app.events) == 3)
        assert isinstance(app.events[2], ParticipantLeft)
        assert (app.events[2].participant_id, app.events[2].name) == (bob.you["id"], "Bob")
        assert app.server.participants("h1") == [(alice.you["id"], "Alice")]


async def test_a_closed_tab_counts_as_leaving_at_once() -> None:
    async with media_app() as app, people(app, "Alice", "Bob") as (alice, bob):
        assert bob.you is not None
        await bob.close()  # no `leave`, but a clean close: the tab was closed
        assert (await alice.expect("participant-left", within=WITHIN))["id"] == bob.you["id"]
        await until(lambda: any(isinstance(e, ParticipantLeft) for e in app.events))
        assert app.server.stats().participants == 1


async def test_a_leaver_frees_transceivers_that_the_next_joiner_reuses_without_offers() -> None:
    async with media_app() as app, people(app, "Alice", "Bob", "Carol") as (alice, bob, carol):
        assert carol.you is not None
        carol_mids = {
            mid for mid, s in alice.streams.items() if s["participant"] == carol.you["id"]
        }
        assert len(carol_mids) == 2
        offers = sum(m["type"] == "offer" for m in alice.messages)

        await carol.leave()
        await alice.expect("streams", where=lambda m: len(m["streams"]) == 2, within=WITHIN)
        assert not carol_mids & set(alice.streams)

        async with person(app, "Dave") as dave:
            await dave.join()
            await alice.expect("streams", where=lambda m: len(m["streams"]) == 4, within=WITHIN)
            assert dave.you is not None
            assert {m for m, s in alice.streams.items() if s["participant"] == dave.you["id"]} == (
                carol_mids
            )
            # Dave's video reaches Alice in Carol's old slots, with no new offer to her (how
            # fast is bench/join.py's business).
            counters = alice.received_from(dave.you["id"])
            await alice.wait_for(lambda: counters.frames_decoded > 0, within=WITHIN)
            assert sum(m["type"] == "offer" for m in alice.messages) == offers
            await all_keep_receiving([alice, bob, dave])


async def test_a_full_huddle_refuses_the_next_person() -> None:
    async with media_app(max_participants=1) as app:
        async with person(app, "Alice") as alice:
            await alice.join()
            async with person(app, "Bob") as bob:
                with pytest.raises(JoinError, match="full"):
                    await bob.join()
                error = bob.errors()[0]
                assert error["code"] == "huddle_full" and error["fatal"] is True
                await until(bob.disconnected)
            assert app.server.stats().participants == 1


# -- ending ---------------------------------------------------------------------------------------


async def test_ending_a_huddle_tells_everyone_and_refuses_new_joins() -> None:
    async with media_app() as app, people(app, "Alice", "Bob") as (alice, bob):
        await app.server.end_huddle("h1", "the host ended it")
        for client in (alice, bob):
            assert (await client.expect("ended", within=WITHIN))["reason"] == "the host ended it"
            await until(client.disconnected)
        await until(lambda: sum(isinstance(e, ParticipantLeft) for e in app.events) == 2)
        assert app.server.stats().huddles == 0
        assert app.server.participants("h1") == []

        status, page = await app.get(app.join_url())
        assert status == 403 and "This huddle has ended (the host ended it)." in page
        with pytest.raises(JoinError, match="403"):
            await HuddleClient(app.join_url(), "Carol").connect()


async def test_shutting_down_says_so_to_everyone() -> None:
    async with media_app() as app, people(app, "Alice") as (alice,):
        await app.server.close()
        assert (await alice.expect("ended", within=WITHIN))["reason"] == "server shutting down"


# -- refused links ---------------------------------------------------------------------------------


def _token(huddle_id: str, ttl: float) -> str:
    return tokens.issue(SECRET, huddle_id, time.time() + ttl)


def _tampered(token: str) -> str:
    body, signature = token.split(".")
    return f"{body}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


REFUSALS: list[tuple[str, Callable[[MediaApp], str], str]] = [
    (
        "tampered token",
        lambda app: f"{app.base_url}/h/h1?t={_tampered(_token('h1', 60))}",
        "not valid (it was changed or signed by someone else)",
    ),
    (
        "expired token",
        lambda app: f"{app.base_url}/h/h1?t={_token('h1', -1)}",
        "has expired",
    ),
    (
        "token for another huddle",
        lambda app: f"{app.base_url}/h/h1?t={_token('h2', 60)}",
        "belongs to a different huddle",
    ),
    ("no token", lambda app: f"{app.base_url}/h/h1", "incomplete or damaged"),
    ("unknown huddle", lambda app: app.join_url("nope"), "does not exist"),
    ("closed huddle", lambda app: app.join_url("old"), "This huddle ended at 14:05 UTC."),
]


@pytest.mark.parametrize(("case", "url_of", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_bad_links_get_a_clear_403_page_and_no_socket(
    case: str, url_of: Callable[[MediaApp], str], reason: str
) -> None:
    async with media_app() as app:
        app.gate.open("old")
        app.gate.close("old", "This huddle ended at 14:05 UTC.")
        url = url_of(app)
        status, page = await app.get(url)
        assert status == 403
        assert "You cannot join this huddle" in page and reason in page
        assert 'data-testid="join-button"' not in page
        with pytest.raises(JoinError, match="HTTP 403"):
            await HuddleClient(url, "Eve").connect()
        assert app.server.stats().signaling_connections == 0


async def test_the_join_page_and_the_client_files_are_served() -> None:
    async with media_app() as app:
        app.gate.open("h9", title="<script>alert(1)</script> planning")
        status, page = await app.get(app.join_url("h9") + "&name=Alice")
        assert status == 200
        for test_id in ("name-input", "join-button", "mute-button", "camera-button"):
            assert f'data-testid="{test_id}"' in page
        assert 'data-testid="leave-button"' in page
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt; planning" in page
        for name in ("huddle.js", "huddle.css"):
            status, body = await app.get(f"{app.base_url}/media/web/{name}")
            assert status == 200 and body
        status, _ = await app.get(f"{app.base_url}/media/web/join.html")
        assert status == 404


# -- bad input ----------------------------------------------------------------------------------

GOOD_NAME = "Mallory"

#: (what, frame to send, expected error code, words the message must contain)
BAD_BEFORE_JOIN: list[tuple[str, Any, str, str]] = [
    ("offer before join", {"type": "offer", "sdp": "v=0"}, "bad_state", "join"),
    ("answer before join", {"type": "answer", "sdp": "v=0"}, "bad_state", "join"),
    ("malformed JSON", '{"type": "join", "name": ', "bad_json", "not valid JSON"),
    ("JSON that is not an object", "[1, 2, 3]", "bad_json", "JSON object"),
    ("JSON nested too deep", "[" * 30_000 + "]" * 30_000, "bad_json", "not valid JSON"),
    ("binary frame", b"\x00\x01binary", "bad_json", "Binary frames"),
    ("unknown type", {"type": "dance"}, "unknown_type", "dance"),
    ("no type", {"name": "x"}, "unknown_type", "Unknown message type"),
    ("oversize message", {"type": "ping", "pad": "x" * 70_000}, "too_large", "65536 bytes"),
    ("join without name", {"type": "join"}, "bad_field", "`name`"),
    ("join with a number for a name", {"type": "join", "name": 7}, "bad_field", "`name`"),
    ("join with a blank name", {"type": "join", "name": "   "}, "bad_field", "1 to 64"),
    ("join with a long name", {"type": "join", "name": "x" * 65}, "bad_field", "1 to 64"),
    ("join with a control character", {"type": "join", "name": "a\x07b"}, "bad_field", "control"),
]

BAD_AFTER_JOIN: list[tuple[str, Any, str, str]] = [
    ("second join", {"type": "join", "name": "Again"}, "bad_state", "already joined"),
    ("answer with no offer", {"type": "answer", "sdp": "v=0\r\n"}, "bad_state", "no offer"),
    ("offer without sdp", {"type": "offer"}, "bad_field", "`sdp`"),
    ("offer that is not SDP", {"type": "offer", "sdp": "hello"}, "bad_sdp", "not SDP"),
    (
        "offer with no media",
        {"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"},
        "bad_sdp",
        "no audio or video",
    ),
    (
        "offer without ICE credentials",
        {
            "type": "offer",
            "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
            "a=rtcp-mux\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n",
        },
        "bad_sdp",
        "could not be applied",
    ),
    ("state with a string", {"type": "state", "audio": "yes", "video": True}, "bad_field", "audio"),
    ("state without video", {"type": "state", "audio": False}, "bad_field", "video"),
    ("share before the offer", {"type": "share", "on": True}, "bad_state", "present once"),
    ("share without on", {"type": "share"}, "bad_field", "`on`"),
    ("share with a string", {"type": "share", "on": True, "audio": "yes"}, "bad_field", "audio"),
    ("view without tiles", {"type": "view"}, "bad_field", "`tiles`"),
    ("view with too many tiles", {"type": "view", "tiles": [{}] * 257}, "bad_field", "256"),
    ("view with a tile not an object", {"type": "view", "tiles": [3]}, "bad_field", "object"),
    (
        "view with a huge height",
        {"type": "view", "tiles": [{"mid": "1", "height": 10**9, "visible": True}]},
        "bad_field",
        "height",
    ),
    (
        "view with a true height",
        {"type": "view", "tiles": [{"mid": "1", "height": True, "visible": True}]},
        "bad_field",
        "height",
    ),
    (
        "view with a long mid",
        {"type": "view", "tiles": [{"mid": "x" * 17, "height": 5, "visible": True}]},
        "bad_field",
        "mid",
    ),
    (
        "view without visible",
        {"type": "view", "tiles": [{"mid": "1", "height": 5}]},
        "bad_field",
        "visible",
    ),
]


async def _refused(mallory: HuddleClient, frame: Any, code: str, words: str) -> None:
    mark = len(mallory.messages)
    if isinstance(frame, str | bytes):
        await mallory.send_raw(frame)
    else:
        await mallory.send(frame)
    error = await mallory.expect("error", after=mark, within=WITHIN)
    assert (error["code"], error.get("fatal", False)) == (code, False), error
    assert words in error["message"], error
    # The connection is still there and still answers.
    mark = len(mallory.messages)
    await mallory.send({"type": "ping"})
    await mallory.expect("pong", after=mark, within=WITHIN)


async def test_bad_messages_get_clear_errors_and_nobody_else_notices() -> None:
    async with media_app() as app, people(app, "Alice", "Bob") as (alice, bob):
        async with person(app, GOOD_NAME) as mallory:
            await mallory.connect()
            for _what, frame, code, words in BAD_BEFORE_JOIN:
                await _refused(mallory, frame, code, words)
                await all_keep_receiving([alice, bob])
            assert [name for _, name in app.server.participants("h1")] == ["Alice", "Bob"]

            await mallory.send({"type": "join", "name": GOOD_NAME})
            await mallory.expect("welcome", within=WITHIN)
            for _what, frame, code, words in BAD_AFTER_JOIN:
                await _refused(mallory, frame, code, words)
                await all_keep_receiving([alice, bob])

            # After all that, a correct offer is still welcome: Mallory publishes like anyone.
            await mallory.publish()
            await all_keep_receiving([alice, bob, mallory])
            await _refused(
                mallory, {"type": "offer", "sdp": "v=0\r\n"}, "bad_state", "already sent"
            )
            errors = len(BAD_BEFORE_JOIN) + len(BAD_AFTER_JOIN) + 1
            assert app.server.stats().signaling_errors == errors
            assert not alice.errors() and not bob.errors()


async def test_a_flood_is_rate_limited_and_the_connection_survives() -> None:
    async with media_app() as app, people(app, "Alice", "Bob") as (alice, bob):
        async with person(app, "Flooder") as flooder:
            await flooder.join()
            await all_keep_receiving([alice, bob, flooder])
            mark = len(flooder.messages)
            for _ in range(200):
                await flooder.send({"type": "ping"})
            await flooder.wait_for(lambda: len(flooder.messages) - mark >= 200, within=WITHIN)
            # Every message is answered once: a pong, or the refusal. How many fit in a second
            # is the limiter's (test_the_rate_limit_counts_messages_per_one_second_window);
            # here the flood only has to hit it, however slowly this machine sends.
            replies = flooder.messages[mark:]
            limited = [m for m in replies if m["type"] == "error"]
            pongs = [m for m in replies if m["type"] == "pong"]
            assert limited and pongs
            assert {m["code"] for m in limited} == {"rate_limited"}
            assert "at most 50 per second" in limited[0]["message"]
            assert len(limited) + len(pongs) == 200
            await all_keep_receiving([alice, bob, flooder])

            # Once the window has passed, pings are answered again.
            await ping_until_answered(flooder)
            assert not alice.errors() and not bob.errors()


def test_the_rate_limit_counts_messages_per_one_second_window() -> None:
    now = [100.0]
    limiter = RateLimiter(RATE_LIMIT_PER_SECOND, clock=lambda: now[0])
    assert [limiter.allow() for _ in range(60)] == [True] * 50 + [False] * 10
    now[0] += 0.999
    assert not limiter.allow(), "still the same window"
    now[0] += 0.001
    assert [limiter.allow() for _ in range(51)] == [True] * 50 + [False]
    now[0] += 5.0
    assert limiter.allow()


async def test_state_changes_reach_the_others() -> None:
    async with media_app() as app, people(app, "Alice", "Bob") as (alice, bob):
        assert alice.you is not None
        await alice.send({"type": "state", "audio": False, "video": True})
        update = await bob.expect("participant-updated", within=WITHIN)
        assert update["participant"] == {**alice.you, "audio": False, "video": True}
        assert bob.participants[alice.you["id"]]["audio"] is False
        assert not [m for m in alice.messages if m["type"] == "participant-updated"]
        assert app.server.stats().signaling_errors == 0
