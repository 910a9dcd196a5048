"""Hosts in charge, checked by the server: scripted participants against a real MediaServer.

Roles come from the signed join link (the host's own, or the card's) and from other hosts, never
from what a client says. Every host control sent by someone without the right is answered
``forbidden`` and changes nothing for anyone. (Chromium drives the same controls through the
page in ``test_hosting_browser.py``, asserting on what WebRTC reports.)
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import pytest

from media.contrib.client import HuddleClient, JoinError
from media.events import ChatPosted, EndRequested, ParticipantRemoved, RoomChanged
from media.messages import HOST_TYPES
from media.signaling import LOCKED, REMOVED
from media.tokens import Role
from tests.media.media_app import MediaApp, media_app

pytestmark = pytest.mark.timeout(120)

#: Seconds any awaited outcome may take: generous, so that a loaded machine is slow, not red.
WITHIN = 15.0


def link(app: MediaApp, role: Role = "participant") -> str:
    return app.server.join_url("h1", time.time() + 600, role)


async def arrive(
    stack: AsyncExitStack,
    app: MediaApp,
    name: str,
    role: Role = "participant",
    seat: str = "",
    **join: Any,
) -> tuple[HuddleClient, dict[str, Any]]:
    """``name`` asks to join h1 by signaling alone (no media: these scenarios are about rights);
    returns the client and the server's first answer (``welcome``, ``waiting`` or a refusal)."""
    client = await stack.enter_async_context(
        HuddleClient(link(app, role), name, seat=seat or secrets.token_urlsafe(18))
    )
    await client.connect()
    mark = len(client.messages)
    await client.send({"type": "join", "name": name, **join})
    first = await client.wait_first(after=mark)
    return client, first


async def enter(
    stack: AsyncExitStack,
    app: MediaApp,
    name: str,
    role: Role = "participant",
    seat: str = "",
    host: HuddleClient | None = None,
) -> HuddleClient:
    """``name`` joins h1; if they are sent to the waiting room, ``host`` lets them in."""
    client, first = await arrive(stack, app, name, role, seat)
    if first["type"] == "waiting" and host is not None:
        waiter = await host.expect(
            "lobby",
            where=lambda m: any(w["name"] == name for w in m["waiting"]),
            within=WITHIN,
        )
        [entry] = [w for w in waiter["waiting"] if w["name"] == name]
        mark = len(client.messages)
        await host.send({"type": "admit", "participant": entry["id"]})
        first = await client.expect("welcome", after=mark, within=WITHIN)
    if first["type"] != "welcome":
        raise JoinError(first.get("message") or first.get("reason") or first["type"])
    client.you = first["you"]
    return client


@asynccontextmanager
async def meeting(*people: tuple[str, Role]) -> AsyncIterator[tuple[MediaApp, list[HuddleClient]]]:
    """The first of ``people`` is a host, who lets in whoever has to wait."""
    async with media_app() as app, AsyncExitStack() as stack:
        first, *others = people
        host = await enter(stack, app, *first)
        clients = [host]
        for name, role in others:
            clients.append(await enter(stack, app, name, role, host=host))
        yield app, clients


def pid(client: HuddleClient) -> str:
    assert client.you is not None
    return str(client.you["id"])


def view(client: HuddleClient, of: HuddleClient) -> dict[str, Any]:
    """How ``client`` last heard of ``of`` (welcome, joined, updated)."""
    latest: dict[str, Any] = {}
    for message in client.messages:
        if message["type"] == "welcome":
            for p in [message["you"], *message["participants"]]:
                if p["id"] == pid(of):
                    latest = p
        elif message["type"] in ("participant-joined", "participant-updated"):
            if message["participant"]["id"] == pid(of):
                latest = message["participant"]
    return latest


async def answer_to(client: HuddleClient, message: dict[str, Any]) -> dict[str, Any]:
    """Send ``message`` and return the ``error`` it got, after a ping proves nothing else came."""
    mark = len(client.messages)
    await client.send(message)
    await client.send({"type": "ping"})
    await client.expect("pong", after=mark, within=WITHIN)
    replies = [m for m in client.messages[mark:] if m["type"] != "pong"]
    assert len(replies) == 1, replies
    return replies[0]


async def quiet(client: HuddleClient, since: int) -> list[dict[str, Any]]:
    """What ``client`` received since ``since``, once a ping of its own came back."""
    mark = len(client.messages)
    await client.send({"type": "ping"})
    await client.expect("pong", after=mark, within=WITHIN)
    return [m for m in client.messages[since:] if m["type"] != "pong"]


async def test_roles_come_from_the_link_and_everyone_sees_them() -> None:
    async with meeting(("Alice", "host"), ("Bob", "participant"), ("Gus", "guest")) as (_, people):
        alice, bob, gus = people
        assert alice.you is not None and alice.you["role"] == "host"
        assert view(gus, alice)["role"] == "host"
        assert view(alice, bob)["role"] == "participant"
        assert view(bob, gus)["role"] == "guest"
        # What the client says about itself is nothing to the server.
        assert (await answer_to(bob, {"type": "role", "participant": pid(bob), "role": "cohost"}))[
            "code"
        ] == "forbidden"


async def test_a_participant_sending_each_host_control_by_hand_is_refused_nothing_changes() -> None:
    async with meeting(("Alice", "host"), ("Bob", "participant"), ("Carol", "participant")) as (
        app,
        people,
    ):
        alice, bob, carol = people
        marks = {c.name: len(c.messages) for c in people}
        attempts: dict[str, dict[str, Any]] = {
            "mute": {"participant": pid(carol)},
            "mute-all": {},
            "ask-camera-off": {"participant": pid(carol)},
            "allow-unmute": {"allowed": False},
            "let-speak": {"participant": pid(carol)},
            "remove": {"participant": pid(alice)},
            "lock": {"locked": True},
            "role": {"participant": pid(bob), "role": "cohost"},
            "end": {},
            "lobby": {"on": True},
            "admit": {"participant": "w-1"},
            "admit-all": {},
            "deny": {"participant": "w-1"},
            "lower-hand": {"participant": pid(carol)},
            "chat-to-notes": {"on": False},
        }
        assert set(attempts) == HOST_TYPES
        for kind, fields in attempts.items():
            error = await answer_to(bob, {"type": kind, **fields})
            assert error["type"] == "error" and error["code"] == "forbidden", (kind, error)
            assert "Only a host can" in error["message"]
        # Nobody heard of any of it, the room is as it was, and no event reached the bot.
        assert await quiet(alice, marks["Alice"]) == []
        assert await quiet(carol, marks["Carol"]) == []
        room = app.server._rooms["h1"]
        assert (room.locked, room.unmute_allowed, room.removed_seats) == (False, True, set())
        assert (room.lobby, room.waiting) == (False, {})
        assert [p.role for p in room.participants.values()] == [
            "host",
            "participant",
            "participant",
        ]
        assert all(p.may_speak and p.audio for p in room.participants.values())
        assert not [e for e in app.events if isinstance(e, EndRequested | ParticipantRemoved)]


async def test_host_mutes_everyone_and_keeps_them_muted_until_let_speak() -> None:
    async with meeting(("Alice", "host"), ("Bob", "participant"), ("Carol", "participant")) as (
        app,
        people,
    ):
        alice, bob, carol = people
        await alice.send({"type": "allow-unmute", "allowed": False})
        await bob.expect("room", where=lambda m: not m["room"]["unmuteAllowed"], within=WITHIN)
        mark = len(bob.messages)
        await alice.send({"type": "mute-all"})
        muted = await bob.expect("muted", after=mark, within=WITHIN)
        assert muted == {"type": "muted", "by": "Alice", "speak": False}
        await carol.expect(
            "notice", where=lambda m: m["text"] == "Alice muted everyone.", within=WITHIN
        )
        assert view(carol, bob)["audio"] is False and view(carol, bob)["speak"] is False
        assert view(bob, alice)["speak"] is True  # hosts are never kept muted
        # Bob's client says it unmuted: refused, and the others still see him muted.
        error = await answer_to(bob, {"type": "state", "audio": True, "video": True})
        assert error["code"] == "forbidden"
        assert view(carol, bob)["audio"] is False
        # Alice lets Bob speak: he may unmute, Carol stays kept muted.
        await alice.send({"type": "let-speak", "participant": pid(bob)})
        await bob.expect("may-speak", after=mark, within=WITHIN)
        await bob.send({"type": "state", "audio": True, "video": True})
        await carol.wait_for(lambda: view(carol, bob)["audio"] is True, within=WITHIN)
        assert (await answer_to(carol, {"type": "state", "audio": True, "video": True}))[
            "code"
        ] == "forbidden"
        # Unmuting allowed again: everyone may speak.
        await alice.send({"type": "allow-unmute", "allowed": True})
        await carol.expect("may-speak", within=WITHIN)
        assert all(p.may_speak for p in app.server._rooms["h1"].participants.values())


async def test_removed_browser_is_out_and_its_link_stays_refused() -> None:
    async with media_app() as app, AsyncExitStack() as stack:
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1, as a browser keeps them
        async with aiohttp.ClientSession(cookie_jar=jar) as browser:
            async with browser.get(link(app)) as page:
                assert page.status == 200
                # Lax: a click on the card in Slack's or Discord's web app carries it along.
                cookie = page.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/h/" in cookie
            seat = next(c.value for c in jar if c.key == "huddle_seat")
            alice = await enter(stack, app, "Alice", "host")
            mallory = await enter(stack, app, "Mallory", seat=seat)
            other_tab = await enter(stack, app, "Mallory again", seat=seat)
            await alice.send({"type": "lobby", "on": True})
            waiting_tab, first = await arrive(stack, app, "Mallory waiting", seat=seat)
            assert first["type"] == "waiting"
            await alice.send({"type": "remove", "participant": pid(mallory)})
            refusal = await mallory.expect("error", within=WITHIN)
            assert refusal["code"] == "removed" and refusal["fatal"] is True
            assert refusal["message"] == "Alice removed you from this huddle."
            await mallory.wait_for(mallory.disconnected, within=WITHIN)
            await alice.expect(
                "participant-left", where=lambda m: m["id"] == pid(mallory), within=WITHIN
            )
            # Every tab of that browser goes, the waiting one too.
            assert (await other_tab.expect("error", within=WITHIN))["code"] == "removed"
            assert (await waiting_tab.expect("error", within=WITHIN))["code"] == "denied"
            removed = [e for e in app.events if isinstance(e, ParticipantRemoved)]
            assert [(r.name, r.by, r.seat) for r in removed] == [
                ("Mallory", "Alice", seat),
                ("Mallory again", "Alice", seat),
            ]
            await alice.send({"type": "lobby", "on": False})
            # The same link from the same browser: the page says why, with 403 ...
            async with browser.get(link(app)) as page:
                assert page.status == 403 and REMOVED in await page.text()
            # ... and a socket that skips the page is refused too (before the upgrade).
            with pytest.raises(JoinError, match="403"):
                await enter(stack, app, "Mallory", seat=seat)
            # Another browser with the card's link still gets in.
            await enter(stack, app, "Bob")


async def test_last_host_leaving_passes_host_to_who_joined_first_who_can_then_end() -> None:
    async with meeting(
        ("Alice", "host"), ("Gus", "guest"), ("Bob", "participant"), ("Carol", "participant")
    ) as (
        app,
        people,
    ):
        alice, gus, bob, carol = people
        await alice.leave()
        # Gus joined first, but a guest; Bob is the first participant.
        await carol.wait_for(lambda: view(carol, bob).get("role") == "host", within=WITHIN)
        await carol.expect("notice", where=lambda m: m["text"] == "Bob is now the host.")
        assert view(carol, gus)["role"] == "guest"
        await bob.send({"type": "end"})
        await bob.wait_for(
            lambda: any(isinstance(e, EndRequested) and e.by == "Bob" for e in app.events),
            within=WITHIN,
        )


async def test_cohosts_have_host_powers_until_a_host_takes_them_back() -> None:
    async with meeting(("Alice", "host"), ("Bob", "participant"), ("Carol", "participant")) as (
        _,
        people,
    ):
        alice, bob, carol = people
        await alice.send({"type": "role", "participant": pid(bob), "role": "cohost"})
        await carol.wait_for(lambda: view(carol, bob).get("role") == "cohost", within=WITHIN)
        await bob.wait_for(lambda: view(bob, bob).get("role") == "cohost", within=WITHIN)
        await bob.send({"type": "mute", "participant": pid(carol)})
        assert (await carol.expect("muted", within=WITHIN))["by"] == "Bob"
        # A co-host cannot remove the host, nor take the host's role.
        assert (await answer_to(bob, {"type": "remove", "participant": pid(alice)}))[
            "code"
        ] == "forbidden"
        await alice.send({"type": "role", "participant": pid(bob), "role": "participant"})
        await carol.wait_for(lambda: view(carol, bob).get("role") == "participant", within=WITHIN)
        assert (await answer_to(bob, {"type": "mute-all"}))["code"] == "forbidden"


async def test_locked_huddle_refuses_the_card_link_but_not_the_host_and_opens_again() -> None:
    async with media_app() as app, AsyncExitStack() as stack:
        alice = await enter(stack, app, "Alice", "host")
        await alice.send({"type": "lock", "locked": True})
        await alice.expect("room", where=lambda m: m["room"]["locked"], within=WITHIN)
        await alice.wait_for(
            lambda: any(isinstance(e, RoomChanged) and e.locked for e in app.events), within=WITHIN
        )
        status, page = await app.get(link(app))
        assert status == 403 and LOCKED in page
        with pytest.raises(JoinError, match="403"):
            await enter(stack, app, "Bob")
        # Hosts never wait: another host link gets in while locked.
        await enter(stack, app, "Dana", "host")
        await alice.send({"type": "lock", "locked": False})
        await alice.expect("room", where=lambda m: not m["room"]["locked"], within=WITHIN)
        await alice.wait_for(
            lambda: any(isinstance(e, RoomChanged) and not e.locked for e in app.events),
            within=WITHIN,
        )
        bob = await enter(stack, app, "Bob")
        assert bob.you is not None and bob.you["role"] == "participant"


@pytest.mark.parametrize(
    "message",
    [
        {"type": "mute"},
        {"type": "mute", "participant": 7},
        {"type": "mute", "participant": "p-999"},
        {"type": "lock", "locked": "yes"},
        {"type": "allow-unmute"},
        {"type": "role", "participant": "SELF", "role": "host"},
        {"type": "remove", "participant": "SELF"},
    ],
)
async def test_malformed_host_controls_get_a_clear_error_and_change_nothing(
    message: dict[str, Any],
) -> None:
    async with meeting(("Alice", "host"), ("Bob", "participant")) as (app, people):
        alice, bob = people
        sent = json.loads(json.dumps(message).replace("SELF", pid(alice)))
        mark = len(bob.messages)
        error = await answer_to(alice, sent)
        assert error["type"] == "error" and error["code"] in (
            "bad_field",
            "no_such_participant",
            "bad_state",
        )
        assert error["message"]
        assert await quiet(bob, mark) == []
        assert [p.role for p in app.server._rooms["h1"].participants.values()] == [
            "host",
            "participant",
        ]


# -- the waiting room and the passcode -------------------------------------------------------


async def test_the_waiting_room_hides_the_call_until_a_host_admits_or_denies() -> None:
    async with media_app() as app, AsyncExitStack() as stack:
        alice = await enter(stack, app, "Alice", "host")
        bob = await enter(stack, app, "Bob", host=alice)
        await alice.send({"type": "lobby", "on": True})
        await bob.expect("room", where=lambda m: m["room"]["lobby"], within=WITHIN)
        bob_mark = len(bob.messages)

        carol, first = await arrive(stack, app, "Carol")
        # Carol learns the title and that she waits: nothing of who is inside.
        assert first == {"type": "waiting", "huddle": {"id": "h1", "title": "Standup"}}
        queue = await alice.expect("lobby", where=lambda m: m["arrived"], within=WITHIN)
        [waiter] = queue["waiting"]
        assert waiter["name"] == "Carol" and queue["arrived"] == waiter
        assert (await answer_to(carol, {"type": "offer", "sdp": "v=0"}))["code"] == "bad_state"
        assert (await answer_to(carol, {"type": "mute-all"}))["code"] == "bad_state"
        # Nobody inside heard of her; the server holds no participant for her.
        assert await quiet(bob, bob_mark) == []
        assert [p.name for p in app.server._rooms["h1"].participants.values()] == ["Alice", "Bob"]

        # Dave waits too; Alice denies him and admits Carol.
        dave, _ = await arrive(stack, app, "Dave")
        queue = await alice.expect("lobby", where=lambda m: len(m["waiting"]) == 2, within=WITHIN)
        dave_id = queue["waiting"][1]["id"]
        await alice.send({"type": "deny", "participant": dave_id})
        denied = await dave.expect("error", within=WITHIN)
        assert denied["code"] == "denied" and denied["fatal"] is True
        assert "did not let you" in denied["message"]
        await dave.wait_for(dave.disconnected, within=WITHIN)
        await alice.send({"type": "admit", "participant": waiter["id"]})
        welcome = await carol.expect("welcome", within=WITHIN)
        assert [p["name"] for p in welcome["participants"]] == ["Alice", "Bob"]
        await bob.expect("participant-joined", where=lambda m: m["participant"]["name"] == "Carol")
        await alice.expect("lobby", where=lambda m: m["waiting"] == [], within=WITHIN)


async def test_guests_always_wait_hosts_never_and_turning_the_room_off_lets_people_in() -> None:
    async with media_app() as app, AsyncExitStack() as stack:
        alice = await enter(stack, app, "Alice", "host")
        _, first = await arrive(stack, app, "Gus", "guest")
        assert first["type"] == "waiting"  # the waiting room is off, but Gus is a guest
        await alice.send({"type": "lobby", "on": True})
        bob, first = await arrive(stack, app, "Bob")
        assert first["type"] == "waiting"
        dana = await enter(stack, app, "Dana", "host")  # a host joining never waits
        assert dana.you is not None and dana.you["role"] == "host"
        # Locked with the waiting room on: newcomers still queue.
        await alice.send({"type": "lock", "locked": True})
        await alice.expect("room", where=lambda m: m["room"]["locked"], within=WITHIN)
        _, first = await arrive(stack, app, "Erin")
        assert first["type"] == "waiting"
        # Unlocked, then the waiting room off: Bob and Erin are let in, Gus (a guest) still waits.
        await alice.send({"type": "lock", "locked": False})
        await alice.send({"type": "lobby", "on": False})
        await bob.expect("welcome", within=WITHIN)
        queue = await alice.expect(
            "lobby", where=lambda m: [w["name"] for w in m["waiting"]] == ["Gus"], within=WITHIN
        )
        assert queue["waiting"][0]["role"] == "guest"


async def test_a_passcode_is_asked_wrong_codes_are_limited_per_huddle_and_hosts_skip_it() -> None:
    from media.events import HuddleAccess
    from media.passcodes import digest

    async with media_app() as app, AsyncExitStack() as stack:
        app.gate.huddles["h1"] = HuddleAccess("h1", "Standup", True, passcode=digest("h1", "4711"))
        status, page = await app.get(link(app))
        assert status == 200 and '"passcode": true' in page
        status, page = await app.get(link(app, "host"))
        assert '"passcode": false' in page
        alice = await enter(stack, app, "Alice", "host")  # no passcode asked of the host
        bob, first = await arrive(stack, app, "Bob")
        assert first["code"] == "bad_passcode" and "needs its passcode" in first["message"]
        assert not first.get("fatal")
        assert (await answer_to(bob, {"type": "join", "name": "Bob", "passcode": "1234"}))[
            "code"
        ] == "bad_passcode"
        # The right code on the same socket: in (spaces do not matter).
        mark = len(bob.messages)
        await bob.send({"type": "join", "name": "Bob", "passcode": "47 11"})
        assert (await bob.expect("welcome", after=mark, within=WITHIN))["type"] == "welcome"

        # Someone guessing: after the huddle's allowance of wrong codes (whatever the address),
        # even the right one waits.
        mallory, _ = await arrive(stack, app, "Mallory", passcode="0000")
        answers = []
        for guess in range(40):
            mark = len(mallory.messages)
            await mallory.send({"type": "join", "name": "Mallory", "passcode": f"{guess:04d}"})
            answers.append((await mallory.expect("error", after=mark, within=WITHIN))["code"])
            if answers[-1] == "rate_limited":
                break
        # 30 wrong codes in all (Bob's two, Mallory's first, then hers) before the limit.
        assert answers[-1] == "rate_limited" and set(answers[:-1]) == {"bad_passcode"}
        assert len(answers) >= 27
        limited = await answer_to(mallory, {"type": "join", "name": "M", "passcode": "4711"})
        assert limited["code"] == "rate_limited" and "wrong passcodes" in limited["message"]
        assert [p.name for p in app.server._rooms["h1"].participants.values()] == ["Alice", "Bob"]
        await quiet(alice, 0)


async def test_a_full_huddle_admits_nobody_more_and_the_host_is_told() -> None:
    async with media_app(max_participants=2) as app, AsyncExitStack() as stack:
        alice = await enter(stack, app, "Alice", "host")
        await enter(stack, app, "Bob")
        _, first = await arrive(stack, app, "Gus", "guest")
        assert first["type"] == "waiting"
        queue = await alice.expect("lobby", where=lambda m: m["arrived"], within=WITHIN)
        error = await answer_to(alice, {"type": "admit", "participant": queue["arrived"]["id"]})
        assert error["code"] == "huddle_full" and "nobody more" in error["message"]
        room = app.server._rooms["h1"]
        assert len(room.participants) == 2 and len(room.waiting) == 1


# -- hands and reactions ---------------------------------------------------------------------


async def test_raised_hands_are_ordered_lowered_by_their_owner_or_a_host_only() -> None:
    async with meeting(("Alice", "host"), ("Bob", "participant"), ("Carol", "participant")) as (
        _,
        people,
    ):
        alice, bob, carol = people
        await carol.send({"type": "hand", "raised": True})
        await bob.send({"type": "hand", "raised": True})
        await alice.wait_for(
            lambda: (
                view(alice, bob).get("hand") is not None
                and view(alice, carol).get("hand") is not None
            ),
            within=WITHIN,
        )
        assert view(alice, carol)["hand"] < view(alice, bob)["hand"]  # Carol raised first
        # Bob may not lower Carol's hand; a host may.
        assert (await answer_to(bob, {"type": "lower-hand", "participant": pid(carol)}))[
            "code"
        ] == "forbidden"
        await alice.send({"type": "lower-hand", "participant": pid(carol)})
        await bob.wait_for(lambda: view(bob, carol).get("hand") is None, within=WITHIN)
        await bob.send({"type": "hand", "raised": False})
        await carol.wait_for(lambda: view(carol, bob).get("hand") is None, within=WITHIN)


async def test_reactions_reach_everyone_and_a_flood_or_an_odd_emoji_is_refused() -> None:
    async with meeting(("Alice", "host"), ("Bob", "participant")) as (_, people):
        alice, bob = people
        await bob.send({"type": "react", "emoji": "🎉"})
        reaction = await alice.expect("reaction", within=WITHIN)
        assert reaction == {"type": "reaction", "participant": pid(bob), "emoji": "🎉"}
        assert (await answer_to(bob, {"type": "react", "emoji": "<img src=x>"}))[
            "code"
        ] == "bad_field"
        # A burst of ten: five in five seconds get through (the 🎉 was one), the rest do not.
        mark = len(bob.messages)
        for _ in range(10):
            await bob.send({"type": "react", "emoji": "👍"})
        await bob.send({"type": "ping"})
        await bob.expect("pong", after=mark, within=WITHIN)
        refused = [m for m in bob.messages[mark:] if m.get("code") == "rate_limited"]
        assert len(refused) >= 5 and "5 seconds" in refused[0]["message"]


async def test_a_locked_huddle_stays_shut_when_the_waiting_room_is_turned_off() -> None:
    async with media_app() as app, AsyncExitStack() as stack:
        alice = await enter(stack, app, "Alice", "host")
        await alice.send({"type": "lobby", "on": True})
        await alice.send({"type": "lock", "locked": True})
        bob, first = await arrive(stack, app, "Bob")
        assert first["type"] == "waiting"
        mark = len(bob.messages)
        await alice.send({"type": "lobby", "on": False})
        await alice.expect("room", where=lambda m: not m["room"]["lobby"], within=WITHIN)
        assert await quiet(bob, mark) == []  # still waiting: locked means nobody new
        [waiter] = app.server._rooms["h1"].waiting.values()
        assert waiter.name == "Bob"


async def test_the_last_cohost_stepping_down_passes_host_on() -> None:
    async with meeting(("Alice", "host"), ("Bob", "participant"), ("Carol", "participant")) as (
        _,
        people,
    ):
        alice, bob, carol = people
        await alice.send({"type": "role", "participant": pid(bob), "role": "cohost"})
        await bob.wait_for(lambda: view(bob, bob).get("role") == "cohost", within=WITHIN)
        await alice.leave()
        await bob.send({"type": "role", "participant": pid(bob), "role": "participant"})
        # Bob stepped down and was the last one with a host's powers: host passes on (to him,
        # the participant who joined first), so the meeting is never without one.
        await carol.wait_for(lambda: view(carol, bob).get("role") == "host", within=WITHIN)


# -- the chat -------------------------------------------------------------------------------


async def test_chat_reaches_everyone_new_joiners_get_it_and_a_flood_is_cut_off() -> None:
    async with media_app() as app, AsyncExitStack() as stack:
        alice = await enter(stack, app, "Alice", "host")
        bob = await enter(stack, app, "Bob")
        await bob.send({"type": "chat", "text": "  <b>hi</b> see https://x.test/a  "})
        entry = await alice.expect("chat", within=WITHIN)
        assert (entry["participant"], entry["name"], entry["text"]) == (
            pid(bob),
            "Bob",
            "<b>hi</b> see https://x.test/a",
        )
        assert entry["at"].endswith("+00:00")
        assert (await bob.expect("chat", within=WITHIN))["id"] == entry["id"]  # to Bob too
        carol = await enter(stack, app, "Carol")
        welcome = next(m for m in carol.messages if m["type"] == "welcome")
        assert [c["text"] for c in welcome["chat"]] == [entry["text"]]
        [posted] = [e for e in app.events if isinstance(e, ChatPosted)]
        assert posted.text == entry["text"] and posted.name == "Bob"
        for bad in (
            {"type": "chat"},
            {"type": "chat", "text": "   "},
            {"type": "chat", "text": "x" * 2001},
        ):
            assert (await answer_to(bob, bad))["code"] == "bad_field"
        mark = len(bob.messages)
        for n in range(12):
            await bob.send({"type": "chat", "text": f"spam {n}"})
        await bob.send({"type": "ping"})
        await bob.expect("pong", after=mark, within=WITHIN)
        assert any(m.get("code") == "rate_limited" for m in bob.messages[mark:])
        # The host decides the chat stays out of the notes: everyone is told, the bot hears.
        await alice.send({"type": "chat-to-notes", "on": False})
        await carol.expect("room", where=lambda m: not m["room"]["chatToNotes"], within=WITHIN)
        await alice.wait_for(
            lambda: any(isinstance(e, RoomChanged) and not e.chat_to_notes for e in app.events),
            within=WITHIN,
        )
