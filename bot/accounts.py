"""Web chat accounts: people, their passwords, sessions, API tokens and invites.

The web chat bound beyond loopback needs to know who is typing: a name in a post is the
signed-in person's, never one the browser sends. Accounts are made by an admin (`huddle user
add`) or by whoever opens an invite link (`huddle user invite`).

Nothing secret is stored: a password is kept as its Argon2id hash (argon2-cffi, memory-hard, so
a stolen database is slow to guess from), and a session, an API token or an invite as the
SHA-256 of a random 256-bit value that only its holder has (unguessable already, so a fast hash
is enough, and a lookup is one indexed read).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.schema import web_credentials, web_invites, web_users
from bot.store import Store
from bot.types import Clock, utc_now

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
NAME_RULE = "1-32 letters, digits, '.', '_' or '-', starting with a letter or digit"
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
#: A browser session lasts this long after sign-in.
SESSION_TTL = timedelta(days=30)
#: An invite link works this long unless told otherwise.
INVITE_TTL = timedelta(days=3)
#: Prefixes tell a leaked secret's kind at a glance (and let secret scanners find them).
TOKEN_PREFIX = "hdl_"


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message says why, for the person."""


@dataclass(frozen=True)
class Account:
    """One person who may use the web chat."""

    name: str
    created_at: datetime
    created_by: str
    sessions: int
    tokens: int


def digest(secret: str) -> str:
    """What is stored for a secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> str:
    """``name`` if it is a valid account name, else :class:`AccountError`."""
    if not NAME.match(name):
        raise AccountError(f"A name is {NAME_RULE}; {name[:40]!r} is not.")
    return name


def check_password(password: str) -> str:
    """``password`` if it is long enough (and not absurdly long), else :class:`AccountError`."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"A password needs at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"A password has at most {MAX_PASSWORD} characters.")
    return password


class Accounts:
    """The accounts of the web chat, in the core's database."""

    def __init__(
        self, store: Store, clock: Clock = utc_now, hasher: PasswordHasher | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.hasher = hasher or PasswordHasher()
        # Checked against when the name is unknown, so that a wrong name costs as long as a
        # wrong password (the answer's timing does not tell which names exist).
        self._decoy = self.hasher.hash(secrets.token_urlsafe(16))

    async def _hash(self, password: str) -> str:
        # Argon2 takes tens of milliseconds of CPU and 64 MiB on purpose: off the event loop.
        return await asyncio.to_thread(self.hasher.hash, password)

    async def _verify(self, stored: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self.hasher.verify, stored, password)
        except (VerificationError, InvalidHashError):
            return False

    # People

    async def add_user(self, name: str, password: str, created_by: str = "cli") -> None:
        """Make an account; :class:`AccountError` if the name is taken or the input is bad."""
        check_name(name)
        password_hash = await self._hash(check_password(password))
        try:
            async with self.store.engine.begin() as conn:
                await conn.execute(
                    insert(web_users).values(
                        name=name,
                        password_hash=password_hash,
                        created_at=self.clock(),
                        created_by=created_by,
                    )
                )
        except IntegrityError:
            raise AccountError(f"There is an account named {name!r} already.") from None

    async def set_password(self, name: str, password: str) -> None:
        """Change a password and end every session of that person (not their API tokens)."""
        password_hash = await self._hash(check_password(password))
        async with self.store.engine.begin() as conn:
            result = await conn.execute(
                update(web_users)
                .where(web_users.c.name == name)
                .values(password_hash=password_hash)
            )
            if not result.rowcount:
                raise AccountError(f"There is no account named {name!r}.")
            await conn.execute(
                delete(web_credentials).where(
                    web_credentials.c.user_name == name, web_credentials.c.kind == "session"
                )
            )

    async def remove_user(self, name: str) -> None:
        """Delete an account with its sessions and tokens (signed out everywhere at once)."""
        async with self.store.engine.begin() as conn:
            await conn.execute(delete(web_credentials).where(web_credentials.c.user_name == name))
            result = await conn.execute(delete(web_users).where(web_users.c.name == name))
            if not result.rowcount:
                raise AccountError(f"There is no account named {name!r}.")

    async def users(self) -> list[Account]:
        """Every account, by name, with how many live sessions and tokens it has."""
        now = self.clock()
        live = (web_credentials.c.expires_at.is_(None)) | (web_credentials.c.expires_at > now)
        counts = (
            select(
                web_credentials.c.user_name,
                func.sum(case((web_credentials.c.kind == "session", 1), else_=0)).label(
                    "n_sessions"
                ),
                func.sum(case((web_credentials.c.kind == "token", 1), else_=0)).label("n_tokens"),
            )
            .where(live)
            .group_by(web_credentials.c.user_name)
            .subquery()
        )
        query = (
            select(web_users, counts.c.n_sessions, counts.c.n_tokens)
            .outerjoin(counts, counts.c.user_name == web_users.c.name)
            .order_by(web_users.c.name)
        )
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            Account(
                r.name, r.created_at, r.created_by, int(r.n_sessions or 0), int(r.n_tokens or 0)
            )
            for r in rows
        ]

    async def exists(self, name: str) -> bool:
        """Whether there is an account with that name."""
        async with self.store.engine.connect() as conn:
            found = await conn.scalar(select(web_users.c.name).where(web_users.c.name == name))
        return found is not None

    # Sessions and tokens

    async def sign_in(self, name: str, password: str) -> str | None:
        """A new session secret for the right name and password, else None."""
        async with self.store.engine.connect() as conn:
            stored = await conn.scalar(
                select(web_users.c.password_hash).where(web_users.c.name == name)
            )
        if stored is None:
            await self._verify(self._decoy, password)
            return None
        if not await self._verify(stored, password):
            return None
        if self.hasher.check_needs_rehash(stored):
            # Stronger parameters since this hash was made: upgrade it while the password is here.
            await self.set_password_hash(name, await self._hash(password))
        return await self._issue(name, "session", "", self.clock() + SESSION_TTL)

    async def set_password_hash(self, name: str, password_hash: str) -> None:
        """Replace a stored hash (a rehash with stronger parameters; sessions stay)."""
        async with self.store.engine.begin() as conn:
            await conn.execute(
                update(web_users)
                .where(web_users.c.name == name)
                .values(password_hash=password_hash)
            )

    async def issue_token(self, name: str, label: str = "") -> str:
        """A new API token (``Authorization: Bearer ...``) for ``name``, valid until revoked."""
        if not await self.exists(name):
            raise AccountError(f"There is no account named {name!r}.")
        return await self._issue(name, "token", label[:64], None)

    async def _issue(self, name: str, kind: str, label: str, expires: datetime | None) -> str:
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self.store.engine.begin() as conn:
            await conn.execute(
                insert(web_credentials).values(
                    id_hash=digest(secret),
                    user_name=name,
                    kind=kind,
                    label=label,
                    created_at=self.clock(),
                    expires_at=expires,
                )
            )
        return secret

    async def holder(self, secret: str, kind: str) -> str | None:
        """The account a live session (or token) secret belongs to, or None."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 128:
            return None
        async with self.store.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(web_credentials.c.user_name, web_credentials.c.expires_at).where(
                        web_credentials.c.id_hash == digest(secret),
                        web_credentials.c.kind == kind,
                    )
                )
            ).first()
        if row is None or (row.expires_at is not None and row.expires_at <= self.clock()):
            return None
        return str(row.user_name)

    async def revoke(self, secret: str) -> None:
        """End one session or token (sign out)."""
        async with self.store.engine.begin() as conn:
            await conn.execute(
                delete(web_credentials).where(web_credentials.c.id_hash == digest(secret))
            )

    async def revoke_tokens(self, name: str) -> int:
        """End every API token of ``name``; how many there were."""
        async with self.store.engine.begin() as conn:
            result = await conn.execute(
                delete(web_credentials).where(
                    web_credentials.c.user_name == name, web_credentials.c.kind == "token"
                )
            )
        return int(result.rowcount or 0)

    # Invites

    async def invite(self, ttl: timedelta = INVITE_TTL) -> str:
        """A one-use invite code: whoever opens its link picks a name and a password."""
        if ttl <= timedelta(0):
            raise AccountError("An invite must last a while; give a positive duration.")
        code = secrets.token_urlsafe(24)
        now = self.clock()
        async with self.store.engine.begin() as conn:
            await conn.execute(
                insert(web_invites).values(
                    id_hash=digest(code), created_at=now, expires_at=now + ttl
                )
            )
        return code

    async def invite_usable(self, code: str) -> bool:
        """Whether ``code`` is an invite that is neither used nor expired."""
        async with self.store.engine.connect() as conn:
            row = (
                await conn.execute(select(web_invites).where(web_invites.c.id_hash == digest(code)))
            ).first()
        return row is not None and row.used_at is None and row.expires_at > self.clock()

    async def accept_invite(self, code: str, name: str, password: str) -> str:
        """Spend an invite on a new account; its first session secret.

        The invite is marked used in the same statement that checks it, so two people racing
        with one link make one account.
        """
        check_name(name)
        password_hash = await self._hash(check_password(password))
        now = self.clock()
        async with self.store.engine.begin() as conn:
            claimed = await conn.execute(
                update(web_invites)
                .where(
                    web_invites.c.id_hash == digest(code),
                    web_invites.c.used_at.is_(None),
                    web_invites.c.expires_at > now,
                )
                .values(used_at=now, used_by=name)
            )
            if not claimed.rowcount:
                raise AccountError("This invite link is used or expired; ask for a new one.")
            if await conn.scalar(select(web_users.c.name).where(web_users.c.name == name)):
                # Rolled back with the claim: the invite stays usable for another name.
                raise AccountError(f"The name {name!r} is taken; pick another.")
            await conn.execute(
                insert(web_users).values(
                    name=name,
                    password_hash=password_hash,
                    created_at=now,
                    created_by=f"invite:{digest(code)[:8]}",
                )
            )
        return await self._issue(name, "session", "", now + SESSION_TTL)
