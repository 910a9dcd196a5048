"""The store, run the same way on SQLite and on the local PostgreSQL."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.records import Huddle, PostRef
from bot.store import OutboxPost, Store
from bot.types import ChannelRef

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
GENERAL = ChannelRef("web", "general")


def _huddle(huddle_id: str, channel: ChannelRef = GENERAL, minutes: int = 0) -> Huddle:
    return Huddle(
        id=huddle_id,
        title=f"Huddle {huddle_id}",
        host_id="alice",
        host_name="Alice",
        channel=channel,
        state="open",
        created_at=T0 + timedelta(minutes=minutes),
    )


async def test_migrations_run_once_and_again_without_harm(database_url: str) -> None:
    store = await Store.open(database_url)
    await store.close()
    store = await Store.open(database_url)  # a restart: already at head
    try:
        assert await store.open_huddles() == []
    finally:
        await store.close()


async def test_a_huddle_lives_and_ends_with_its_attendance(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        await store.add_huddle(_huddle("aaa111"))
        await store.add_huddle(_huddle("bbb222", ChannelRef("web", "random"), minutes=1))
        assert [h.id for h in await store.open_huddles()] == ["aaa111", "bbb222"]
        assert [h.id for h in await store.open_huddles(GENERAL)] == ["aaa111"]

        await store.record_join("aaa111", "p-1", "Alice", T0 + timedelta(minutes=2))
        await store.mark_first_joined("aaa111", T0 + timedelta(minutes=2))
        await store.record_join("aaa111", "p-2", "Bob", T0 + timedelta(minutes=3))
        await store.mark_first_joined("aaa111", T0 + timedelta(minutes=3))  # keeps the first
        await store.record_leave("aaa111", "p-2", T0 + timedelta(minutes=10))

        stays = await store.attendance("aaa111")
        assert [(s.name, s.left_at) for s in stays] == [
            ("Alice", None),
            ("Bob", T0 + timedelta(minutes=10)),
        ]
        assert stays[0].joined_at == T0 + timedelta(minutes=2)
        assert stays[0].joined_at.tzinfo is not None

        end = T0 + timedelta(minutes=25)
        assert await store.end_huddle("aaa111", end, "ended by host") is True
        assert await store.end_huddle("aaa111", end, "empty") is False  # only one ender wins
        huddle = await store.huddle("aaa111")
        assert huddle is not None
        assert (huddle.state, huddle.ended_at, huddle.end_reason) == ("ended", end, "ended by host")
        assert huddle.first_joined_at == T0 + timedelta(minutes=2)
        assert all(s.left_at is not None for s in await store.attendance("aaa111"))
        assert [h.id for h in await store.open_huddles()] == ["bbb222"]
        assert await store.huddle("nope00") is None
    finally:
        await store.close()


async def test_stale_attendance_is_closed_after_a_restart(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        await store.add_huddle(_huddle("ccc333"))
        await store.record_join("ccc333", "p-1", "Alice", T0, node="host-a:8080")
        await store.record_join("ccc333", "p-2", "Bob", T0, node="host-b:8080")
        # host-a restarted: its own stays are stale, host-b's people are still in the call.
        assert await store.close_stale_attendance(T0 + timedelta(hours=1), "host-a:8080") == 1
        alice, bob = await store.attendance("ccc333")
        assert alice.left_at == T0 + timedelta(hours=1) and bob.left_at is None
    finally:
        await store.close()


async def test_outbox_rows_lease_coalesce_and_land(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        assert await store.put_post("card", GENERAL, None, '{"v": 1}', T0) == 1
        assert await store.put_post("card", GENERAL, None, '{"v": 2}', T0) == 2  # coalesces
        assert await store.put_post("reply", GENERAL, "card", '{"r": 1}', T0) == 1
        lease = T0 + timedelta(seconds=30)
        claimed = await store.claim_due_posts(T0, lease)
        assert [(e.key, e.version, e.payload) for e in claimed] == [
            ("card", 2, '{"v": 2}'),
            ("reply", 1, '{"r": 1}'),
        ]
        # Leased: another worker gets nothing until the lease runs out.
        assert await store.claim_due_posts(T0 + timedelta(seconds=1), lease) == []
        card, reply = claimed
        assert await store.undelivered_before(reply) is True  # its parent has not landed
        await store.mark_post_delivered(card, "m-1", T0)
        assert await store.undelivered_before(reply) is False
        assert await store.post_ref("card") == PostRef("card", GENERAL, "m-1")
        assert await store.post_progress("card") == (2, "m-1")
        assert await store.outbox_backlog() == 1

        await store.mark_post_failed(reply, "boom", T0 + timedelta(seconds=5))
        assert await store.claim_due_posts(T0 + timedelta(seconds=4), lease) == []
        [again] = await store.claim_due_posts(T0 + timedelta(seconds=5), lease)
        assert (again.key, again.attempts) == ("reply", 1)
        # A lease that ran out (the process died mid-send) makes the post due again.
        [stolen] = await store.claim_due_posts(
            lease + timedelta(seconds=1), lease + timedelta(seconds=31)
        )
        assert stolen.key == "reply"
    finally:
        await store.close()


async def test_a_huddle_and_its_card_go_in_together_and_the_card_is_its_writers(
    database_url: str,
) -> None:
    store = await Store.open(database_url)
    try:
        lease = T0 + timedelta(seconds=30)
        card = OutboxPost("huddle/ddd444/card", GENERAL, None, '{"v": 1}', T0, lease_until=lease)
        added = await store.add_huddle(_huddle("ddd444"), card)
        assert added is not None
        version, leased = added
        assert version == 1 and leased is not None
        assert (leased.key, leased.version, leased.sending) == (card.key, 1, False)
        assert [h.id for h in await store.open_huddles()] == ["ddd444"]
        # Leased to its writer, who sends it at once: the outbox worker leaves it alone...
        assert await store.claim_due_posts(T0 + timedelta(seconds=1), lease) == []
        # ...and a later version of it is queued for the worker, not leased to its writer.
        assert await store.queue_post(card) == (2, None)
        # A writer that dies holding the lease leaves the post to the next claim, which is told
        # that a send may have begun (the platform is checked before posting again).
        [again] = await store.claim_due_posts(
            lease + timedelta(seconds=1), lease + timedelta(seconds=31)
        )
        assert (again.key, again.version, again.sending) == (card.key, 2, True)
    finally:
        await store.close()


async def test_a_huddle_id_that_is_taken_writes_nothing(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        card = OutboxPost("huddle/eee555/card", GENERAL, None, '{"v": 1}', T0)
        assert await store.add_huddle(_huddle("eee555"), card) == (1, None)
        again = OutboxPost("huddle/eee555/card", GENERAL, None, '{"v": "other"}', T0)
        assert await store.add_huddle(_huddle("eee555", minutes=5), again) is None
        [entry] = await store.claim_due_posts(T0, T0 + timedelta(seconds=30))
        assert (entry.version, entry.payload) == (1, '{"v": 1}')  # the first card, untouched
        [huddle] = await store.open_huddles()
        assert huddle.created_at == T0
    finally:
        await store.close()


async def test_a_post_that_waited_for_its_thread_keeps_an_earlier_unfinished_send(
    database_url: str,
) -> None:
    store = await Store.open(database_url)
    try:
        lease = T0 + timedelta(seconds=30)
        await store.put_post("card", GENERAL, None, '{"c": 1}', T0)
        await store.put_post("reply", GENERAL, "card", '{"r": 1}', T0)
        await store.claim_due_posts(T0, lease)  # a process begins sending both, then dies
        later = lease + timedelta(seconds=1)
        card, reply = await store.claim_due_posts(later, later + timedelta(seconds=30))
        assert (card.sending, reply.sending) == (True, True)
        # The reply must wait for its card; its unfinished first send is not forgotten.
        await store.mark_post_failed(reply, "waiting", later, attempt=False)
        await store.mark_post_delivered(card, "m-1", later)
        [reply] = await store.claim_due_posts(later, later + timedelta(seconds=30))
        assert reply.sending is True
    finally:
        await store.close()


async def test_web_chat_history(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        card = await store.add_chat_message(
            channel="general",
            author="huddle",
            is_bot=True,
            title="Retro",
            text="Nobody in yet",
            buttons=[{"label": "Join", "url": "http://x/h/1"}],
            at=T0,
        )
        await store.add_chat_message(
            channel="general", author="alice", is_bot=False, text="hi", thread_of=card.id, at=T0
        )
        await store.add_chat_message(
            channel="general",
            author="huddle",
            is_bot=True,
            text="only for bob",
            visible_to="bob",
            at=T0,
        )
        edited = await store.edit_chat_message(
            card.id, title="Retro", text="2 in the huddle", buttons=[], at=T0 + timedelta(1)
        )
        assert edited is not None and edited.text == "2 in the huddle" and edited.buttons == []

        alice_sees = await store.chat_history("general", "alice")
        bob_sees = await store.chat_history("general", "bob")
        assert [m.text for m in alice_sees] == ["2 in the huddle", "hi"]
        assert [m.text for m in bob_sees] == ["2 in the huddle", "hi", "only for bob"]
        assert alice_sees[1].thread_of == card.id
        assert await store.chat_channels() == ["general"]
    finally:
        await store.close()


async def test_the_migrations_build_exactly_the_schema_the_code_declares(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from bot.schema import metadata

    store = await Store.open(database_url)
    try:
        async with store.engine.connect() as conn:
            differences = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await store.close()
    # The scheduler's own table (APScheduler creates it) is not ours to declare.
    assert [d for d in differences if "scheduler_jobs" not in repr(d)] == []


async def test_a_sqlite_connection_handed_back_mid_transaction_is_rolled_back(
    tmp_path: Path,
) -> None:
    from sqlalchemy.util import greenlet_spawn

    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/reset.db")
    try:
        # Past SQLAlchemy's own transaction handling: a write left open on the pooled connection.
        raw = await store.engine.raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.execute(
            "INSERT INTO user_prefs (platform, user_id, zone) VALUES ('web', 'alice', 'UTC')"
        )
        assert driver.in_transaction
        await greenlet_spawn(raw.close)  # back into the pool (of one connection)
        assert not driver.in_transaction
        assert await store.zone_of("user", "web", "alice") is None
        # The file is not left locked: the next write goes through.
        async with asyncio.timeout(30):
            await store.set_zone("user", "web", "bob", "Europe/Paris")
        assert await store.zone_of("user", "web", "bob") == "Europe/Paris"
    finally:
        await store.close()
