"""The web chat with accounts (as it runs once reachable from other machines), over real HTTP.

Rate limits per address are shown from another host in tests/net/test_web_access.py: here every
request comes from loopback, which is not limited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.web.auth import SESSION_COOKIE
from tests.product import RunningHuddle, running_huddle

PASSWORD = "correct horse battery"


@pytest.fixture
async def huddle(tmp_path: Path) -> AsyncIterator[RunningHuddle]:
    async with running_huddle(tmp_path / "data", accounts="on") as running:
        await running.parts.accounts.add_user("alice", PASSWORD)
        await running.parts.accounts.add_user("bob", "bob's long password")
        yield running


def jar() -> aiohttp.CookieJar:
    """A browser's cookie jar (aiohttp's default one keeps no cookies for an IP address)."""
    return aiohttp.CookieJar(unsafe=True)


async def sign_in(
    huddle: RunningHuddle, name: str, password: str
) -> tuple[aiohttp.ClientSession, aiohttp.ClientResponse, dict[str, Any]]:
    """A browser of its own (a cookie jar) that signs in through the API, as the page does."""
    browser = aiohttp.ClientSession(headers={"Origin": huddle.url}, cookie_jar=jar())
    response = await browser.post(
        f"{huddle.url}/api/auth/signin", json={"name": name, "password": password}
    )
    body = await response.json()
    return browser, response, body


async def test_without_a_session_the_api_says_401_and_the_page_sends_to_sign_in(
    huddle: RunningHuddle,
) -> None:
    async with aiohttp.ClientSession() as anonymous:
        for method, path in (
            ("GET", "/api/chat/channels"),
            ("GET", "/api/chat/general/messages?user=alice"),
            ("GET", "/api/chat/general/events?user=alice"),
            ("POST", "/api/chat/general/messages"),
            ("POST", "/api/chat/general/actions"),
            ("GET", "/api/auth/me"),
        ):
            async with anonymous.request(
                method, f"{huddle.url}{path}", json={"user": "alice", "text": "/meet"}
            ) as response:
                assert response.status == 401, path
                assert (await response.json())["signin"] == "/signin"
        async with anonymous.get(f"{huddle.url}/chat/team", allow_redirects=False) as page:
            assert page.status == 302
            assert page.headers["Location"] == "/signin?next=/chat/team"
        async with anonymous.get(f"{huddle.url}/signin") as page:
            assert page.status == 200 and "account.js" in await page.text()
    # Nothing was posted by anyone.
    assert await huddle.parts.store.chat_history("general", None) == []


async def test_a_signed_in_person_posts_as_themselves_whatever_the_client_claims(
    huddle: RunningHuddle,
) -> None:
    browser, response, body = await sign_in(huddle, "alice", PASSWORD)
    async with browser:
        assert response.status == 200 and body == {"name": "alice"}
        cookie = response.cookies[SESSION_COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Lax"
        assert not cookie["secure"]  # plain HTTP here; tests/net/test_web_access.py: HTTPS
        async with browser.get(f"{huddle.url}/api/auth/me") as me:
            assert await me.json() == {"name": "alice", "accounts": True}

        async with browser.post(
            f"{huddle.url}/api/chat/team/messages", json={"user": "bob", "text": "/meet Sync"}
        ) as posted:
            assert posted.status == 200
            card, _host_link = (await posted.json())["posts"]
        assert "alice" in card["text"] and "bob" not in card["text"]
        history = await huddle.parts.store.chat_history("team", None)
        assert [m.author for m in history if not m.is_bot] == ["alice"]

        # Private replies go to the account, not to a name in the query string.
        async with browser.post(
            f"{huddle.url}/api/chat/team/messages", json={"text": "/meet help"}
        ) as posted:
            [help_reply] = (await posted.json())["posts"]
        assert help_reply["ephemeral"]
        async with browser.get(f"{huddle.url}/api/chat/team/messages?user=bob") as seen:
            mine = [p["id"] for p in (await seen.json())["posts"]]
        assert help_reply["id"] in mine
    bob, _, _ = await sign_in(huddle, "bob", "bob's long password")
    async with bob, bob.get(f"{huddle.url}/api/chat/team/messages?user=alice") as seen:
        assert help_reply["id"] not in [p["id"] for p in (await seen.json())["posts"]]


async def test_a_request_from_another_sites_page_is_refused_even_with_the_cookie(
    huddle: RunningHuddle,
) -> None:
    browser, response, _ = await sign_in(huddle, "alice", PASSWORD)
    async with browser:
        cookie = {SESSION_COOKIE: response.cookies[SESSION_COOKIE].value}
        for origin in ("http://evil.example", "null", huddle.url.replace("127.0.0.1", "localhost")):
            async with aiohttp.ClientSession(cookies=cookie) as forged:
                async with forged.post(
                    f"{huddle.url}/api/chat/team/messages",
                    json={"text": "/meet Pwned"},
                    headers={"Origin": origin},
                ) as refused:
                    assert refused.status == 403, origin
                    assert "another site" in (await refused.json())["error"]
                async with forged.post(
                    f"{huddle.url}/api/chat/team/messages",
                    json={"text": "hi"},
                    headers={"Sec-Fetch-Site": "cross-site"},
                ) as refused:
                    assert refused.status == 403
        async with browser.post(
            f"{huddle.url}/api/auth/signin",
            json={"name": "alice", "password": PASSWORD},
            headers={"Origin": "http://evil.example"},
        ) as login_csrf:
            assert login_csrf.status == 403
    assert await huddle.parts.store.chat_history("team", None) == []


async def test_a_script_uses_a_bearer_token_and_signing_out_ends_the_session(
    huddle: RunningHuddle,
) -> None:
    token = await huddle.parts.accounts.issue_token("bob", "deploy bot")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as script:
        async with script.post(
            f"{huddle.url}/api/chat/ops/messages", json={"user": "alice", "text": "deployed"}
        ) as posted:
            assert posted.status == 200
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer hdl_nope"}) as script:
        async with script.post(
            f"{huddle.url}/api/chat/ops/messages", json={"text": "deployed"}
        ) as refused:
            assert refused.status == 401
    [message] = await huddle.parts.store.chat_history("ops", None)
    assert message.author == "bob"

    browser, response, _ = await sign_in(huddle, "alice", PASSWORD)
    async with browser:
        async with browser.post(f"{huddle.url}/api/auth/signout") as out:
            assert out.status == 200
        cookie = {SESSION_COOKIE: response.cookies[SESSION_COOKIE].value}
    async with (
        aiohttp.ClientSession(cookies=cookie) as replay,
        replay.get(f"{huddle.url}/api/auth/me") as me,
    ):
        assert me.status == 401  # the old cookie is dead on the server, not just deleted


async def test_wrong_passwords_and_bad_bodies_get_clear_errors(huddle: RunningHuddle) -> None:
    browser, response, body = await sign_in(huddle, "alice", "not the password")
    async with browser:
        assert response.status == 401 and body["error"] == "Wrong name or password."
        for bad in (b"not json", b"[]", b'{"name": 1}', b"x" * 20_000):
            async with browser.post(f"{huddle.url}/api/auth/signin", data=bad) as answer:
                assert answer.status == 400
                assert (await answer.json())["error"]


async def test_an_invite_link_makes_an_account_that_is_signed_in(huddle: RunningHuddle) -> None:
    code = await huddle.parts.accounts.invite()
    async with aiohttp.ClientSession(headers={"Origin": huddle.url}, cookie_jar=jar()) as browser:
        async with browser.get(f"{huddle.url}/invite/{code}") as page:
            assert page.status == 200
        async with browser.post(
            f"{huddle.url}/api/auth/invite",
            json={"code": code, "name": "carol", "password": "carol's long password"},
        ) as made:
            assert made.status == 200, await made.text()
        async with browser.get(f"{huddle.url}/api/auth/me") as me:
            assert (await me.json())["name"] == "carol"
        async with browser.post(
            f"{huddle.url}/api/auth/invite",
            json={"code": code, "name": "dave", "password": "dave's long password"},
        ) as again:
            assert again.status == 400
            assert "used or expired" in (await again.json())["error"]
