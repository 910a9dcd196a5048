"""The built-in web chat, driven through its HTTP API the way a script (or the page) uses it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.product import RunningHuddle, link_role, running_huddle


@pytest.fixture
async def huddle(tmp_path: Path) -> AsyncIterator[RunningHuddle]:
    async with running_huddle(tmp_path / "data", empty_grace=1.0) as running:
        yield running


async def test_meet_posts_a_card_with_a_join_button(huddle: RunningHuddle) -> None:
    body = await huddle.say("general", "alice", "/meet Design review")
    card, host_link = body["posts"]
    assert card["title"] == "Design review"
    assert card["bot"] is True and card["ephemeral"] is False and card["thread_of"] is None
    assert "Hosted by alice" in card["text"] and "Nobody in yet" in card["text"]
    [button] = card["buttons"]
    assert button["label"] == "Join"
    assert button["url"].startswith(f"{huddle.url}/h/")
    # Alice typed /meet, so she hosts: her own link, which only she sees, makes her host.
    assert host_link["ephemeral"] is True and "You host" in host_link["text"]
    [host_button] = host_link["buttons"]
    assert host_button["label"] == "Join as host" and host_button["url"] != button["url"]
    assert link_role(host_button["url"]) == "host" and link_role(button["url"]) == "participant"
    channel = await huddle.history("general", "bob")
    assert host_button["url"] not in str(channel) and button["url"] in str(channel)

    async with huddle.http.get(button["url"]) as page:
        assert page.status == 200
        assert "text/html" in page.headers["Content-Type"]

    # Everyone in the channel sees alice's command and the card, in order.
    history = await huddle.history("general", "bob")
    assert [(p["user"], p["text"].splitlines()[0]) for p in history] == [
        ("alice", "/meet Design review"),
        ("huddle", card["text"].splitlines()[0]),
    ]


async def test_plain_messages_and_threads(huddle: RunningHuddle) -> None:
    first = await huddle.say("random", "alice", "hello")
    assert first == {"posts": []}
    [root] = await huddle.history("random")
    await huddle.say("random", "bob", "hi back", thread_of=root["id"])
    history = await huddle.history("random")
    assert [(p["user"], p["thread_of"]) for p in history] == [("alice", None), ("bob", root["id"])]


async def test_replies_to_mistakes_are_only_for_the_person_who_typed(
    huddle: RunningHuddle,
) -> None:
    for text, hint in [
        ("/meet lsit", "Did you mean `/meet list`?"),
        ("/meet help", "`/meet list`"),
        ("/meet end", "Which huddle?"),
        ("/meet end zzzzzz", "There is no huddle `zzzzzz`"),
        ("/meet list", "No active huddles"),
        ("/frobnicate", "Unknown command `/frobnicate`"),
    ]:
        [reply] = (await huddle.say("general", "alice", text))["posts"]
        assert hint in reply["text"], (text, reply["text"])
        assert reply["ephemeral"] is True
    assert not any(p["ephemeral"] for p in await huddle.history("general", "bob"))
    assert sum(p["ephemeral"] for p in await huddle.history("general", "alice")) == 6


async def test_list_and_end_with_host_rules(huddle: RunningHuddle) -> None:
    card, _host_link = (await huddle.say("general", "alice", "/meet Retro"))["posts"]
    huddle_id = card["text"].split("id `")[1].split("`")[0]

    [listing] = (await huddle.say("general", "bob", "/meet list"))["posts"]
    assert f"`{huddle_id}` Retro · nobody in" in listing["text"]
    assert listing["buttons"][0]["url"].startswith(f"{huddle.url}/h/{huddle_id}?t=")

    [refusal] = (await huddle.say("general", "bob", f"/meet end {huddle_id}"))["posts"]
    assert "Only alice" in refusal["text"]

    [done] = (await huddle.say("general", "alice", f"/meet end {huddle_id}"))["posts"]
    assert "Ended “Retro”" in done["text"]
    await huddle.parts.huddles.wait_idle()
    [edited] = [p for p in await huddle.history("general") if p["id"] == card["id"]]
    assert "Ended, nobody joined" in edited["text"]
    assert edited["buttons"] == [] and edited["edited_at"] is not None

    # The old link now gets a clear refusal, not a half-working call.
    async with huddle.http.get(card["buttons"][0]["url"]) as page:
        assert page.status == 403
        assert "ended" in (await page.text()).lower()
    [again] = (await huddle.say("general", "alice", f"/meet end {huddle_id}"))["posts"]
    assert "already ended" in again["text"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"text": "/meet"}', '"user" is required'),
        (b'{"user": "", "text": "/meet"}', '"user" is required'),
        (b'{"user": "alice"}', '"text" is required'),
        (b'{"user": "alice", "text": 5}', '"text" is required'),
        (json.dumps({"user": "alice", "text": "x" * 4001}).encode(), "the limit is 4000"),
        (json.dumps({"user": "a", "text": "x" * 20000}).encode(), "larger than"),
        (b'{"user": "alice", "text": "hi", "thread_of": 999999}', '"thread_of" must be'),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
async def test_bad_requests_get_a_clear_400(huddle: RunningHuddle, body: bytes, error: str) -> None:
    async with huddle.http.post(
        f"{huddle.url}/api/chat/general/messages",
        data=body,
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 400
        assert error in (await response.json())["error"]
    # ...and the server keeps serving everyone else.
    assert (await huddle.say("general", "bob", "/meet"))["posts"][0]["buttons"]


async def test_bad_channel_name_is_400(huddle: RunningHuddle) -> None:
    async with huddle.http.get(f"{huddle.url}/api/chat/Not%20A%20Channel/messages") as response:
        assert response.status == 400
        assert "Channel names" in (await response.json())["error"]


async def test_live_updates_stream_new_posts_and_edits(huddle: RunningHuddle) -> None:
    received: list[dict[str, object]] = []
    connected, marked = asyncio.Event(), asyncio.Event()
    marker = "that was quick"

    async def listen() -> None:
        async with huddle.http.get(
            f"{huddle.url}/api/chat/general/events", params={"user": "bob"}
        ) as stream:
            async for raw in stream.content:
                line = raw.decode().strip()
                if line == ": connected":  # written once bob's stream is subscribed
                    connected.set()
                elif line.startswith("data: "):
                    received.append(json.loads(line[6:]))
                    if received[-1]["text"] == marker:
                        marked.set()

    listener = asyncio.create_task(listen())
    try:
        async with asyncio.timeout(30):
            await connected.wait()
        card, _host_link = (await huddle.say("general", "alice", "/meet Standup"))["posts"]
        # Ephemeral for alice: bob must not see the help.
        await huddle.say("general", "alice", "/meet help")
        huddle_id = card["text"].split("id `")[1].split("`")[0]
        await huddle.say("general", "alice", f"/meet end {huddle_id}")
        await huddle.parts.huddles.wait_idle()
        async with asyncio.timeout(30):
            await huddle.parts.publisher.flush()  # the card's last edit has been sent
        # Bob's own message, last: once his stream has it, everything before it has come too.
        await huddle.say("general", "bob", marker)
        async with asyncio.timeout(30):
            await marked.wait()
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    texts = [(p["user"], str(p["text"]).splitlines()[-1]) for p in received]
    assert texts == [
        ("alice", "/meet Standup"),
        ("huddle", "Nobody in yet"),
        ("alice", "/meet help"),
        ("alice", f"/meet end {huddle_id}"),
        ("huddle", "Ended, nobody joined"),
        ("bob", "that was quick"),
    ]


async def test_healthz_and_metrics(huddle: RunningHuddle) -> None:
    await huddle.say("general", "alice", "/meet")
    async with huddle.http.get(f"{huddle.url}/healthz") as response:
        assert response.status == 200
        health = await response.json()
    assert health["status"] == "ok" and health["version"] == "0.1.0"
    assert health["huddles_open"] == 1 and health["participants"] == 0
    assert health["database"] == "sqlite"
    async with huddle.http.post(f"{huddle.url}/api/chat/general/messages", data=b"{") as bad:
        assert bad.status == 400
    async with huddle.http.get(f"{huddle.url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    for name in [
        "huddle_huddles_active",
        "huddle_participants",
        "huddle_forwarded_packets_total",
        "huddle_forwarded_bytes_total",
        "huddle_layer_switches_total",
        "huddle_layers_paused",
        "huddle_simulcast_saved_bytes_total",
        'huddle_errors_total{source="http"}',
    ]:
        assert name in text, name
    errors = [
        line for line in text.splitlines() if line.startswith('huddle_errors_total{source="http"}')
    ]
    assert float(errors[0].split()[-1]) >= 1


async def test_the_host_locks_and_unlocks_from_the_channel_and_the_call_follows(
    huddle: RunningHuddle,
) -> None:
    from media.contrib.client import HuddleClient

    card, host_post = (await huddle.say("general", "alice", "/meet Interview"))["posts"]
    huddle_id = card["text"].split("id `")[1].split("`")[0]
    card_url, host_url = card["buttons"][0]["url"], host_post["buttons"][0]["url"]
    async with HuddleClient(card_url, "Carol", publish_video=False) as carol:
        await carol.join()
        [refusal] = (await huddle.say("general", "bob", f"/meet lock {huddle_id}"))["posts"]
        assert "Only alice" in refusal["text"] and refusal["ephemeral"] is True
        [locked] = (await huddle.say("general", "alice", f"/meet lock {huddle_id}"))["posts"]
        assert "Locked “Interview”" in locked["text"]
        # Carol, in the call, is told; the card's link keeps newcomers out, the host's does not.
        await carol.expect("room", where=lambda m: m["room"]["locked"], within=15)
        async with huddle.http.get(card_url) as page:
            assert page.status == 403 and "locked" in await page.text()
        async with huddle.http.get(host_url) as page:
            assert page.status == 200
        await huddle.parts.huddles.wait_idle()
        [shown] = [p for p in await huddle.history("general") if p["id"] == card["id"]]
        assert "locked" in shown["text"]
        await huddle.say("general", "alice", f"/meet unlock {huddle_id}")
        await carol.expect("room", where=lambda m: not m["room"]["locked"], within=15)
        async with huddle.http.get(card_url) as page:
            assert page.status == 200

    # Lost the host link? The host asks again, privately; nobody else gets it.
    [again] = (await huddle.say("general", "alice", f"/meet host {huddle_id}"))["posts"]
    assert again["ephemeral"] is True and again["buttons"][0]["label"] == "Join as host"
    assert link_role(again["buttons"][0]["url"]) == "host"
    [nope] = (await huddle.say("general", "bob", f"/meet host {huddle_id}"))["posts"]
    assert "Only alice" in nope["text"] and not nope["buttons"]


async def test_waiting_room_guest_link_and_passcode_from_the_channel(
    huddle: RunningHuddle,
) -> None:
    from media.contrib.client import HuddleClient

    card, host_post = (await huddle.say("general", "alice", "/meet lobby Interview"))["posts"]
    assert card["title"] == "Interview" and "waiting room" in card["text"]
    huddle_id = card["text"].split("id `")[1].split("`")[0]
    card_url, host_url = card["buttons"][0]["url"], host_post["buttons"][0]["url"]

    async with HuddleClient(host_url, "Alice", publish_video=False) as alice:
        await alice.join()
        async with HuddleClient(card_url, "Bob", publish_video=False) as bob:
            await bob.connect()
            await bob.send({"type": "join", "name": "Bob"})
            assert (await bob.wait_first(within=15))["type"] == "waiting"
            await alice.expect("lobby", where=lambda m: m["arrived"], within=15)

        # A guest link: for people outside the channel, always through the waiting room.
        [nope] = (await huddle.say("general", "bob", f"/meet invite {huddle_id}"))["posts"]
        assert "Only alice" in nope["text"] and not nope["buttons"]
        [invite] = (await huddle.say("general", "alice", f"/meet invite {huddle_id}"))["posts"]
        assert invite["ephemeral"] is True and invite["buttons"][0]["label"] == "Guest link"
        assert link_role(invite["buttons"][0]["url"]) == "guest"

        # A passcode: asked on the join page of every link but the host's.
        [set_code] = (await huddle.say("general", "alice", f"/meet passcode {huddle_id} 2468"))[
            "posts"
        ]
        assert "`2468`" in set_code["text"] and set_code["ephemeral"] is True
        async with huddle.http.get(card_url) as page:
            assert '"passcode": true' in await page.text()
        async with huddle.http.get(host_url) as page:
            assert '"passcode": false' in await page.text()
        async with HuddleClient(card_url, "Carol", publish_video=False) as carol:
            await carol.connect()
            await carol.send({"type": "join", "name": "Carol", "passcode": "1111"})
            assert (await carol.wait_first(within=15))["code"] == "bad_passcode"
            mark = len(carol.messages)
            await carol.send({"type": "join", "name": "Carol", "passcode": "2468"})
            assert (await carol.wait_first(after=mark, within=15))["type"] == "waiting"
        await huddle.say("general", "alice", f"/meet passcode {huddle_id} off")

        # The waiting room off: the card's link lets people straight in again.
        [off] = (await huddle.say("general", "alice", f"/meet lobby off {huddle_id}"))["posts"]
        assert "is off" in off["text"]
        async with HuddleClient(card_url, "Dave", publish_video=False) as dave:
            await dave.join()
            assert dave.you is not None and dave.you["role"] == "participant"
    # The card is edited through the outbox, after the reply: wait for the edit to arrive.
    async with asyncio.timeout(30):
        while True:
            await huddle.parts.huddles.wait_idle()
            [shown] = [p for p in await huddle.history("general") if p["id"] == card["id"]]
            if "waiting room" not in shown["text"]:
                break
            await asyncio.sleep(0.2)


async def test_the_chat_stays_out_of_the_notes_when_the_host_says_so(
    huddle: RunningHuddle,
) -> None:
    from media.contrib.client import HuddleClient

    card, host_post = (await huddle.say("general", "alice", "/meet Private"))["posts"]
    async with HuddleClient(host_post["buttons"][0]["url"], "Alice", publish_video=False) as alice:
        await alice.join()
        await alice.send({"type": "chat", "text": "the numbers are off the record"})
        await alice.expect("chat", within=15)
        await alice.send({"type": "chat-to-notes", "on": False})
        await alice.expect("room", where=lambda m: not m["room"]["chatToNotes"], within=15)
        await alice.leave()
    thread: list[dict[str, Any]] = []
    for _ in range(300):  # the huddle ends after its 1 s grace; up to 30 s on a loaded machine
        thread = [p for p in await huddle.history("general") if p["thread_of"] == card["id"]]
        if any(p["title"].startswith("Meeting notes") for p in thread):
            break
        await asyncio.sleep(0.1)
    titles = [p["title"] for p in thread]
    assert "Meeting notes: Private" in titles
    assert not any("Chat during the call" in t for t in titles)
    assert "off the record" not in json.dumps(thread)
