"""Media on several cores: `huddle serve` with HUDDLE_MEDIA_WORKERS=2.

Two huddles land on two worker processes and each call works through main's signaling proxy,
with the media going straight to the huddle's worker; joins and leaves reach the chat card; ending
a huddle ends the call on its worker; a killed worker comes back and the people it dropped are
marked gone; bad links are refused by main and by the worker itself; and stopping serve (even
with kill -9) leaves no worker process behind.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser

from adapters import cli
from bot.config import media_workers
from bot.types import ChannelRef, User
from media import control
from media.contrib.client import HuddleClient, JoinError
from media.workers import MediaWorkers, WorkerProcess, worker_index
from tests.media.test_browser_call import assert_receiving, join, participant_ids
from tests.processes import ServeProcess
from tests.product import RunningHuddle, running_huddle
from tests.test_huddle_lifecycle import card_text

pytestmark = pytest.mark.timeout(120)


def huddle_ids_one_per_worker(workers: int = 2) -> list[str]:
    """Huddle ids that hash to worker 0, 1, ... in that order (the hash is stable)."""
    found: dict[int, str] = {}
    for n in itertools.count():
        candidate = f"wk{n:04d}"
        found.setdefault(worker_index(candidate, workers), candidate)
        if len(found) == workers:
            return [found[index] for index in range(workers)]
    raise AssertionError("unreachable")


def udp_ports(pid: int) -> set[int]:
    """Local UDP ports of the sockets process ``pid`` holds open (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed meanwhile
            continue
        if match := re.fullmatch(r"socket:\[(\d+)\]", target):
            inodes.add(match.group(1))
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table, encoding="ascii") as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def server_candidate_ports(client: HuddleClient) -> set[int]:
    """UDP ports of the server's ICE candidates in the SDP the client got."""
    assert client.pc.remoteDescription is not None
    return {
        int(line.split()[5])
        for line in client.pc.remoteDescription.sdp.splitlines()
        if line.startswith("a=candidate:") and " udp " in line.lower()
    }


def proc_file(pid: int, name: str) -> bytes:
    """``/proc/PID/NAME`` as bytes (cmdline, environ)."""
    with open(f"/proc/{pid}/{name}", "rb") as file:
        return file.read()


async def eventually(condition: Callable[[], bool], within: float = 15.0) -> None:
    """Wait until ``condition()`` holds (checked every 0.1 s)."""
    for _ in range(int(within * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)
    assert condition()


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


@pytest.fixture
async def huddle(tmp_path: Path) -> AsyncIterator[RunningHuddle]:
    async with running_huddle(tmp_path / "data", media_workers=2, empty_grace=30.0) as running:
        yield running


def workers_of(huddle: RunningHuddle) -> MediaWorkers:
    media = huddle.parts.media
    assert isinstance(media, MediaWorkers)
    return media


async def start_huddle(huddle: RunningHuddle, huddle_id: str, title: str) -> tuple[str, int]:
    """alice starts ``title`` in #general with this id; its join link and card id."""
    await huddle.parts.huddles.create(
        ChannelRef("web", "general"), User("alice", "alice"), title, huddle_id=huddle_id
    )
    await huddle.parts.huddles.wait_idle()
    [card] = [p for p in await huddle.history("general") if p["title"] == title]
    return card["buttons"][0]["url"], card["id"]


async def call(url: str, *names: str) -> list[HuddleClient]:
    """``names`` join the huddle and each receives everyone else's video."""
    people = [HuddleClient(url, name, width=160, height=120) for name in names]
    for person in people:
        await person.join()
    for person in people:
        for other in people:
            if other is not person:
                assert other.you is not None
                other_id = other.you["id"]
                await person.wait_for(
                    lambda p=person, o=other_id: p.received_from(o).frames_decoded > 5, within=15
                )
    return people


async def test_two_huddles_on_two_workers_calls_work_through_the_proxy_and_the_card_follows(
    huddle: RunningHuddle,
) -> None:
    media = workers_of(huddle)
    first_id, second_id = huddle_ids_one_per_worker()
    pids = media.worker_pids()
    assert len(set(pids)) == 2 and os.getpid() not in pids
    first_url, first_card = await start_huddle(huddle, first_id, "Standup")
    second_url, second_card = await start_huddle(huddle, second_id, "Retro")

    standup = await call(first_url, "Alice", "Bob")
    retro = await call(second_url, "Carol", "Dave")

    # Signaling went through main's port, but the media flows to the huddle's own worker.
    for huddle_id, people, pid, other in (
        (first_id, standup, pids[0], pids[1]),
        (second_id, retro, pids[1], pids[0]),
    ):
        assert people[0].join_url.startswith(huddle.url)
        worker = media.worker_for(huddle_id)
        assert worker is not None and worker.pid == pid
        ports = server_candidate_ports(people[0])
        assert ports and ports <= udp_ports(pid), (ports, udp_ports(pid))
        assert not ports & udp_ports(other) and not ports & udp_ports(os.getpid())

    # Ids are unique across workers.
    ids = [p.you["id"] for p in standup + retro if p.you is not None]
    assert len(set(ids)) == 4

    # Joins reached the bot: both cards count their people; /healthz sums the workers.
    await card_text(huddle, "general", first_card, "2 in the huddle: Alice, Bob")
    await card_text(huddle, "general", second_card, "2 in the huddle: Carol, Dave")
    health = await (await huddle.http.get(f"{huddle.url}/healthz")).json()
    assert health["huddles_active"] == 2 and health["participants"] == 4
    assert [name for _, name in media.participants(first_id)] == ["Alice", "Bob"]
    stats = await media.collect_stats()
    assert stats.packets_forwarded > 0 and stats.signaling_connections == 4
    metrics = await (await huddle.http.get(f"{huddle.url}/metrics")).text()
    [forwarded] = [
        line for line in metrics.splitlines() if line.startswith("huddle_forwarded_packets_total")
    ]
    assert float(forwarded.split()[-1]) > 0

    # Leaves too.
    await standup[1].leave()
    await card_text(huddle, "general", first_card, "1 in the huddle: Alice")
    for person in (standup[0], *retro):
        await person.leave()
    await card_text(huddle, "general", second_card, "Everyone left")


async def test_two_browsers_call_through_a_worker(browser: Browser, huddle: RunningHuddle) -> None:
    # The web client as people use it: page and socket from main's port, media to the worker.
    huddle_id = huddle_ids_one_per_worker()[1]
    url, card = await start_huddle(huddle, huddle_id, "Browsers")
    alice = await join(browser, huddle.url, url, "Alice")
    bob = await join(browser, huddle.url, url, "Bob")
    ids = await participant_ids(bob)
    await assert_receiving(alice, [ids["Bob"]])
    await assert_receiving(bob, [ids["Alice"]])
    await card_text(huddle, "general", card, "2 in the huddle: Alice, Bob")
    await bob.get_by_test_id("leave-button").click()
    await card_text(huddle, "general", card, "1 in the huddle: Alice")


async def test_more_than_a_hundred_signaling_sockets_are_relayed_at_once(
    huddle: RunningHuddle,
) -> None:
    # A bug the benchmark caught: the relay's HTTP client pooled at most 100 connections, so
    # the 101st person in any huddle of the server waited forever for `welcome`.
    url, _ = await start_huddle(huddle, huddle_ids_one_per_worker()[0], "All hands")
    sockets = [
        HuddleClient(url, f"p{i}", publish_audio=False, publish_video=False) for i in range(105)
    ]
    try:
        await asyncio.gather(*(s.connect() for s in sockets))
        await asyncio.gather(*(s.send({"type": "ping"}) for s in sockets))
        for client in sockets:
            assert (await client.expect("pong", within=10))["type"] == "pong"
        stats = await workers_of(huddle).collect_stats()
        assert stats.signaling_connections == 105
    finally:
        await asyncio.gather(*(s.close() for s in sockets))


async def test_ending_a_huddle_ends_the_call_on_its_worker(huddle: RunningHuddle) -> None:
    media = workers_of(huddle)
    huddle_id = huddle_ids_one_per_worker()[1]
    url, card = await start_huddle(huddle, huddle_id, "Planning")
    alice, bob = await call(url, "Alice", "Bob")

    [done] = (await huddle.say("general", "alice", f"/meet end {huddle_id}"))["posts"]
    assert "Ended" in done["text"]
    for person in (alice, bob):
        ended = await person.expect("ended", within=10)
        assert ended["type"] == "ended"
        await person.wait_for(person.disconnected, within=10)
    stats = await media.collect_stats()
    assert stats.participants == 0 and stats.signaling_connections == 0
    await card_text(huddle, "general", card, "Ended,")

    with pytest.raises(JoinError, match="403"):
        await HuddleClient(url, "Late").join()
    await alice.close()
    await bob.close()


async def test_host_controls_reach_the_worker_and_what_they_decide_comes_back(
    huddle: RunningHuddle,
) -> None:
    huddle_id = huddle_ids_one_per_worker()[1]
    url, card = await start_huddle(huddle, huddle_id, "Board")
    host_url = huddle.parts.huddles.join_url(huddle_id, "host")
    alice = HuddleClient(host_url, "Alice", publish_video=False)
    mallory = HuddleClient(url, "Mallory", publish_video=False, seat="mallory-seat-0123456789")
    try:
        await alice.join()
        await mallory.join()
        assert mallory.you is not None
        # Removed on the worker: the event reaches the bot through main, and the seat is
        # refused by main's join page and by the worker's room alike.
        await alice.send({"type": "remove", "participant": mallory.you["id"]})
        assert (await mallory.expect("error", within=10))["code"] == "removed"
        await card_text(huddle, "general", card, "1 in the huddle: Alice")
        stays = await huddle.parts.store.attendance(huddle_id)
        assert [(s.name, s.removed_by) for s in stays] == [("Alice", None), ("Mallory", "Alice")]
        again = HuddleClient(url, "Mallory", publish_video=False, seat="mallory-seat-0123456789")
        with pytest.raises(JoinError, match="403"):
            await again.join()
        await again.close()
        # Locked from the channel: Alice's call on the worker hears of it.
        await huddle.say("general", "alice", f"/meet lock {huddle_id}")
        await alice.expect("room", where=lambda m: m["room"]["locked"], within=10)
        late = HuddleClient(url, "Late", publish_video=False)
        with pytest.raises(JoinError, match="403"):
            await late.join()
        await late.close()
    finally:
        await alice.close()
        await mallory.close()


async def test_a_killed_worker_comes_back_its_people_are_marked_gone_and_new_joins_work(
    huddle: RunningHuddle,
) -> None:
    media = workers_of(huddle)
    huddle_id = huddle_ids_one_per_worker()[0]
    url, card = await start_huddle(huddle, huddle_id, "Incident")
    alice, bob = await call(url, "Alice", "Bob")
    await card_text(huddle, "general", card, "2 in the huddle: Alice, Bob")
    assert alice.you is not None and bob.you is not None
    old_ids = {alice.you["id"], bob.you["id"]}
    assert len(old_ids) == 2
    worker = media.worker_for(huddle_id)
    assert worker is not None and worker.pid is not None
    old_pid = worker.pid
    forwarded = (await media.collect_stats()).packets_forwarded
    assert forwarded > 0

    os.kill(old_pid, signal.SIGKILL)
    # Their sockets drop; the bot hears that they left.
    for person in (alice, bob):
        await person.wait_for(person.disconnected, within=10)
    await card_text(huddle, "general", card, "Everyone left")
    assert media.participants(huddle_id) == []

    await eventually(lambda: media.worker_pids()[0] not in (None, old_pid))
    new_pid = media.worker_pids()[0]
    assert new_pid not in (None, old_pid)
    assert media.worker_pids()[1] is not None  # the other worker was not touched
    # Counters never go backwards (/metrics counters): the dead worker's stay in the totals.
    assert media.stats().packets_forwarded >= forwarded

    carol, erin = await call(url, "Carol", "Erin")
    await card_text(huddle, "general", card, "2 in the huddle: Carol, Erin")
    assert carol.you is not None and erin.you is not None
    new_ids = {carol.you["id"], erin.you["id"]}
    assert len(new_ids) == 2 and not new_ids & old_ids  # ids are never reused
    # Their media goes to the new worker: the server's candidates are its sockets.
    ports = server_candidate_ports(carol)
    assert ports and ports <= udp_ports(new_pid)
    for person in (alice, bob, carol, erin):
        await person.close()


async def test_bad_links_are_refused_by_main_and_by_the_worker_itself(
    huddle: RunningHuddle,
) -> None:
    media = workers_of(huddle)
    huddle_id = huddle_ids_one_per_worker()[1]
    url, _ = await start_huddle(huddle, huddle_id, "Private")
    tampered = url[:-3] + "AAA"

    async with huddle.http.get(tampered) as page:
        assert page.status == 403 and "not valid" in await page.text()
    with pytest.raises(JoinError, match="403"):
        await HuddleClient(tampered, "Mallory").join()

    # Straight to the worker's loopback port, around main: it checks the token itself...
    worker = media.worker_for(huddle_id)
    assert worker is not None and worker.port is not None
    direct = f"http://127.0.0.1:{worker.port}"
    with pytest.raises(JoinError, match="403"):
        await HuddleClient(tampered.replace(huddle.url, direct), "Mallory").join()
    # ... and asks main's gate: a validly signed link to a huddle that does not exist is refused.
    ghost = media.join_url("nosuch", time.time() + 60).replace(huddle.url, direct)
    with pytest.raises(JoinError, match="403"):
        await HuddleClient(ghost, "Mallory").join()
    assert media.stats().participants == 0


async def test_a_malformed_control_message_is_dropped_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[dict[str, object]] = []
    config = control.WorkerConfig(
        index=0,
        secret=b"s",
        public_url="http://x",
        max_participants=1,
        ice_servers=[],
        first_participant_id=1,
        participant_id_step=1,
        core=None,
        log_level=20,
        stats_interval=1.0,
    )
    worker = WorkerProcess(config, lambda _worker, message: seen.append(message))

    class FakeProcess:
        stdin = None
        stdout = asyncio.StreamReader()

        async def wait(self) -> int:
            return 0

    process = FakeProcess()
    worker.process = process  # type: ignore[assignment]
    for line in (b"not json\n", b'{"no": "type"}\n', b'{"type": "ready", "port": "x"}\n'):
        process.stdout.feed_data(line)
    process.stdout.feed_data(b'{"type": "ready", "port": 4242}\n{"type": "closed"}\n')
    process.stdout.feed_eof()
    assert await worker._run() == 0
    assert worker.port == 4242 and seen == [{"type": "closed"}]
    dropped = [r for r in caplog.records if "media_worker_bad_message" in r.getMessage()]
    assert len(dropped) == 3


async def test_a_worker_drops_a_malformed_command_and_carries_on(
    huddle: RunningHuddle, caplog: pytest.LogCaptureFixture
) -> None:
    media = workers_of(huddle)
    worker = media.worker_for(huddle_ids_one_per_worker()[0])
    assert worker is not None and worker.process is not None and worker.process.stdin
    worker.process.stdin.write(b"garbage\n" + b'{"type": "end", "huddle": 7}\n')
    await eventually(lambda: caplog.text.count("control_message_dropped") >= 2)
    # Still answering, same process.
    await media.collect_stats()
    assert worker.stats is not None and media.worker_for(huddle_ids_one_per_worker()[0]) is worker
    dropped = [r for r in caplog.records if "control_message_dropped" in r.getMessage()]
    assert len(dropped) == 2 and all("worker=0" in r.getMessage() for r in dropped)


def test_the_setting_reads_counts_and_auto() -> None:
    assert media_workers("") == 0 and media_workers("0") == 0 and media_workers("3") == 3
    assert media_workers("auto") == len(os.sched_getaffinity(0))
    with pytest.raises(ValueError, match="HUDDLE_MEDIA_WORKERS"):
        media_workers("two")
    with pytest.raises(ValueError, match="HUDDLE_MEDIA_WORKERS"):
        media_workers("-1")
    with pytest.raises(SystemExit):
        cli.main(["serve", "--media-workers", "lots"])


async def test_huddle_serve_with_two_workers_stops_cleanly_and_leaves_no_worker(
    tmp_path: Path,
) -> None:
    serve = await ServeProcess(
        tmp_path / "data", env={"HUDDLE_MEDIA_WORKERS": "2", "HUDDLE_SECRET": "not-in-ps-0123"}
    ).start()
    assert serve.process is not None
    workers = children(serve.process.pid)
    assert len(workers) == 2
    for pid in workers:
        assert b"media.worker" in proc_file(pid, "cmdline")
        for where in ("cmdline", "environ"):
            assert b"not-in-ps-0123" not in proc_file(pid, where), where
    # A call through the subprocess, then a clean stop: everyone gets `ended`, workers exit.
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{serve.url}/api/chat/general/messages", json={"user": "alice", "text": "/meet Sub"}
        ) as response,
    ):
        card, _host_link = (await response.json())["posts"]
    alice, bob = await call(card["buttons"][0]["url"], "Alice", "Bob")
    await serve.stop()
    assert serve.process.returncode == 0, serve.log()[-2000:]
    for person in (alice, bob):
        assert (await person.expect("ended", within=15))["reason"] == "server shutting down"
        await person.close()
    assert not [pid for pid in workers if alive(pid)]
    assert "shutting down" in serve.log()

    # kill -9 of main: the workers notice their control pipe close and exit on their own.
    again = await ServeProcess(
        tmp_path / "data", env={"HUDDLE_MEDIA_WORKERS": "2"}, name="again"
    ).start()
    assert again.process is not None
    workers = children(again.process.pid)
    assert len(workers) == 2
    again.kill9()
    await again.wait_dead()
    await eventually(lambda: not any(alive(pid) for pid in workers))
    assert not [pid for pid in workers if alive(pid)]


async def test_a_dropped_socket_resumes_through_the_relay_and_a_closed_one_leaves(
    huddle: RunningHuddle,
) -> None:
    huddle_id = huddle_ids_one_per_worker()[0]
    url, _card = await start_huddle(huddle, huddle_id, "Roaming")
    alice, bob = await call(url, "Alice", "Bob")
    assert alice.you is not None and bob.you is not None
    # The relay passes on how the socket ended: dropped (4000) keeps Bob's place...
    await bob.resume()
    alice_id = alice.you["id"]
    await bob.wait_for(lambda: bob.received_from(alice_id).frames_decoded > 5, within=15)
    assert not [m for m in alice.messages if m["type"] == "participant-left"]
    # ...a clean close is leaving, at once.
    await bob.close()
    assert (await alice.expect("participant-left", within=15))["id"] == bob.you["id"]
    await alice.close()
