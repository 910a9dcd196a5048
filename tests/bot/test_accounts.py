"""Web chat accounts on SQLite and PostgreSQL: passwords, sessions, tokens, invites."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher

from bot.accounts import SESSION_TTL, AccountError, Accounts, digest
from bot.schema import web_credentials, web_users
from bot.store import Store


class ManualClock:
    def __init__(self) -> None:
        self.now = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = await Store.open(database_url)
    yield store
    await store.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def accounts(store: Store, clock: ManualClock) -> Accounts:
    return Accounts(store, clock=clock)


async def test_a_password_is_stored_as_an_argon2id_hash_and_signs_in(
    accounts: Accounts, store: Store
) -> None:
    await accounts.add_user("alice", "correct horse battery")
    async with store.engine.connect() as conn:
        [row] = (await conn.execute(web_users.select())).all()
    assert row.password_hash.startswith("$argon2id$")
    assert "correct horse" not in row.password_hash
    secret = await accounts.sign_in("alice", "correct horse battery")
    assert secret is not None and await accounts.holder(secret, "session") == "alice"
    async with store.engine.connect() as conn:
        [credential] = (await conn.execute(web_credentials.select())).all()
    # Only the digest is kept: the database alone does not let anyone in.
    assert credential.id_hash == digest(secret) and secret not in credential.id_hash
    assert await accounts.sign_in("alice", "wrong horse battery") is None
    assert await accounts.sign_in("nobody", "correct horse battery") is None


async def test_names_and_passwords_are_checked_and_a_name_is_taken_once(
    accounts: Accounts,
) -> None:
    with pytest.raises(AccountError, match="at least 10"):
        await accounts.add_user("alice", "short")
    for bad in ("", "-alice", "al ice", "x" * 33, "ali\x00ce"):
        with pytest.raises(AccountError, match="A name is"):
            await accounts.add_user(bad, "correct horse battery")
    await accounts.add_user("alice", "correct horse battery")
    with pytest.raises(AccountError, match="already"):
        await accounts.add_user("alice", "another long password")


async def test_a_session_ends_after_its_time_on_a_new_password_and_on_sign_out(
    accounts: Accounts, clock: ManualClock
) -> None:
    await accounts.add_user("alice", "correct horse battery")
    old = await accounts.sign_in("alice", "correct horse battery")
    assert old is not None
    clock.now += SESSION_TTL - timedelta(seconds=1)
    assert await accounts.holder(old, "session") == "alice"
    clock.now += timedelta(seconds=1)
    assert await accounts.holder(old, "session") is None

    session = await accounts.sign_in("alice", "correct horse battery")
    token = await accounts.issue_token("alice", "ci")
    assert session is not None
    await accounts.set_password("alice", "a brand new password")
    assert await accounts.holder(session, "session") is None
    assert await accounts.holder(token, "token") == "alice"  # scripts keep working
    assert await accounts.sign_in("alice", "correct horse battery") is None

    again = await accounts.sign_in("alice", "a brand new password")
    assert again is not None
    await accounts.revoke(again)
    assert await accounts.holder(again, "session") is None


async def test_a_session_is_not_a_token_and_garbage_is_nobody(accounts: Accounts) -> None:
    await accounts.add_user("alice", "correct horse battery")
    session = await accounts.sign_in("alice", "correct horse battery")
    token = await accounts.issue_token("alice")
    assert session is not None
    assert await accounts.holder(session, "token") is None
    assert await accounts.holder(token, "session") is None
    for garbage in ("", "hdl_", "hdl_" + "A" * 43, "x" * 10_000, session + "x"):
        assert await accounts.holder(garbage, "session") is None


async def test_removing_an_account_signs_it_out_everywhere(accounts: Accounts) -> None:
    await accounts.add_user("alice", "correct horse battery")
    session = await accounts.sign_in("alice", "correct horse battery")
    token = await accounts.issue_token("alice")
    assert [a.name for a in await accounts.users()] == ["alice"]
    [listed] = await accounts.users()
    assert (listed.sessions, listed.tokens) == (1, 1)
    await accounts.remove_user("alice")
    assert session is not None and await accounts.holder(session, "session") is None
    assert await accounts.holder(token, "token") is None
    assert await accounts.users() == []
    with pytest.raises(AccountError, match="no account"):
        await accounts.remove_user("alice")


async def test_an_invite_makes_one_account_once_and_expires(
    accounts: Accounts, clock: ManualClock
) -> None:
    code = await accounts.invite(timedelta(days=1))
    assert await accounts.invite_usable(code)
    await accounts.add_user("alice", "correct horse battery")
    with pytest.raises(AccountError, match="taken"):
        await accounts.accept_invite(code, "alice", "another long password")
    # A taken name does not spend the invite; two people racing with it make one account.
    results = await asyncio.gather(
        accounts.accept_invite(code, "bob", "bob's long password"),
        accounts.accept_invite(code, "carol", "carol's long password"),
        return_exceptions=True,
    )
    made = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, AccountError)]
    assert len(made) == 1 and len(refused) == 1, results
    assert "used or expired" in str(refused[0])
    assert not await accounts.invite_usable(code)
    assert sorted(a.name for a in await accounts.users())[0] == "alice"
    assert len(await accounts.users()) == 2

    late = await accounts.invite(timedelta(hours=1))
    clock.now += timedelta(hours=1)
    with pytest.raises(AccountError, match="used or expired"):
        await accounts.accept_invite(late, "dave", "dave's long password")
    with pytest.raises(AccountError, match="used or expired"):
        await accounts.accept_invite("not-a-code", "dave", "dave's long password")


async def test_a_hash_made_with_weaker_parameters_is_upgraded_at_sign_in(
    store: Store, clock: ManualClock
) -> None:
    weak = Accounts(store, clock=clock, hasher=PasswordHasher(time_cost=1, memory_cost=8192))
    await weak.add_user("alice", "correct horse battery")
    strong = Accounts(store, clock=clock)
    assert await strong.sign_in("alice", "correct horse battery") is not None
    async with store.engine.connect() as conn:
        [row] = (await conn.execute(web_users.select())).all()
    assert not strong.hasher.check_needs_rehash(row.password_hash)
