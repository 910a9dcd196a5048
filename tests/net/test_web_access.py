"""The web chat reachable from other machines: nobody gets in without an account.

    colleague 198.18.7.2 ----- 198.18.7.1 server (huddle serve --host 0.0.0.0)
                                    |
    this test 198.18.207.1 ---- 198.18.207.2 (the admin link: another address, not loopback)

Bound beyond loopback, `huddle serve` runs the web chat with accounts (made by the admin's
`huddle user` commands), limits each address's sign-in attempts, chat requests and joins, and
keeps its health detail and metrics to this machine or a scraper holding HUDDLE_METRICS_TOKEN.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import async_playwright

from tests.net.hosts import Host, server_and_colleague
from tests.net.serve import HostedServe, chromium_on
from tests.trust import nss_home

pytestmark = pytest.mark.timeout(240)

SERVER, COLLEAGUE, ADMIN = "198.18.7.1", "198.18.7.2", "198.18.207.2"
PASSWORD = "bob's long password"
METRICS_TOKEN = "scraper-token-for-the-test"

#: Records every Content-Security-Policy violation on a page, before any of its own script runs.
CSP_WATCH = (
    "window.__cspViolations = [];"
    "document.addEventListener('securitypolicyviolation',"
    " (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
)


@pytest.fixture
def lan() -> Iterator[tuple[Host, Host]]:
    with server_and_colleague(SERVER, COLLEAGUE, ADMIN) as (server, colleague, _):
        yield server, colleague


def jar() -> aiohttp.CookieJar:
    """A browser's cookie jar (aiohttp's default one keeps no cookies for an IP address)."""
    return aiohttp.CookieJar(unsafe=True)


async def test_a_colleague_signs_in_over_https_and_posts_under_their_own_name(
    lan: tuple[Host, Host], tmp_path: Path
) -> None:
    server, colleague = lan
    serve = HostedServe(
        server, tmp_path / "data", admin_address=ADMIN, args=("--tls", "self-signed")
    )
    serve.public_url = f"https://{SERVER}:{serve.port}"
    serve.admin_url = f"https://{ADMIN}:{serve.port}"
    serve.env["HUDDLE_PUBLIC_URL"] = serve.public_url
    ca = tmp_path / "data" / "tls" / "ca.pem"
    await serve.start(ca=ca)
    try:
        await serve.account("bob", PASSWORD)
        home = nss_home(tmp_path / "home", [ca])
        async with (
            async_playwright() as pw,
            chromium_on(pw, colleague, tmp_path, env={"HOME": str(home)}) as browser,
        ):
            context = await browser.new_context()
            await context.add_init_script(CSP_WATCH)
            page = await context.new_page()
            await page.goto(f"{serve.public_url}/chat/team")
            # No session: the chat sends the stranger to sign in first.
            await page.get_by_test_id("account-form").wait_for(timeout=30_000)
            assert page.url.startswith(f"{serve.public_url}/signin?next=")
            await page.get_by_test_id("name").fill("bob")
            await page.get_by_test_id("password").fill("not the password")
            await page.get_by_test_id("submit").click()
            await (
                page.get_by_test_id("error")
                .filter(has_text="Wrong name or password")
                .wait_for(timeout=30_000)
            )
            await page.get_by_test_id("password").fill(PASSWORD)
            await page.get_by_test_id("submit").click()
            await page.wait_for_url(f"{serve.public_url}/chat/team", timeout=30_000)
            assert await page.get_by_test_id("user-input").input_value() == "bob"
            await page.get_by_test_id("chat-input").fill("/meet Design review")
            await page.get_by_test_id("chat-send").click()
            card = page.get_by_test_id("card").filter(has_text="Hosted by bob")
            await card.filter(has_text="Design review").wait_for(timeout=30_000)
            # Bob typed /meet: his host link is his alone, next to the card.
            await page.get_by_test_id("card").filter(has_text="You host").wait_for()
            authors = await page.locator("[data-testid=message] .author").all_inner_texts()
            assert "bob" in authors and set(authors) <= {"bob", "huddle"}, authors

            [cookie] = [c for c in await context.cookies() if c["name"] == "huddle_session"]
            assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
            # Every page ran under its CSP (no inline script or style) without a violation.
            assert await page.evaluate("window.__cspViolations") == []

            await page.get_by_test_id("sign-out").click()
            await page.get_by_test_id("account-form").wait_for(timeout=30_000)
        # The server's own record: the post is bob's, who signed in from the colleague's host.
        assert f"signed in name=bob remote={COLLEAGUE}" in serve.log()
    finally:
        await serve.stop()


async def _status(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> int:
    async with http.request(method, url, **kw) as response:
        await response.read()
        return response.status


async def test_from_another_address_strangers_guessers_forgers_and_floods_are_kept_out(
    lan: tuple[Host, Host], tmp_path: Path
) -> None:
    server, _ = lan
    serve = HostedServe(
        server,
        tmp_path / "data",
        admin_address=ADMIN,
        env={"HUDDLE_METRICS_TOKEN": METRICS_TOKEN},
    )
    await serve.start()
    base = serve.admin_url
    try:
        async with aiohttp.ClientSession() as stranger:
            # No session: 401 from the API, a redirect from the page; nothing is posted.
            assert (
                await _status(
                    stranger,
                    "POST",
                    f"{base}/api/chat/general/messages",
                    json={"user": "alice", "text": "/meet Sneaky"},
                )
                == 401
            )
            async with stranger.get(f"{base}/", allow_redirects=False) as page:
                assert page.status == 302 and page.headers["Location"].startswith("/signin")
                assert "script-src 'self'" in page.headers["Content-Security-Policy"]
                assert page.headers["X-Content-Type-Options"] == "nosniff"
            # Health without detail; metrics refused; both in full with the scraper's token.
            async with stranger.get(f"{base}/healthz") as health:
                assert await health.json() == {"status": "ok"}
            assert await _status(stranger, "GET", f"{base}/metrics") == 403
            scraper = {"Authorization": f"Bearer {METRICS_TOKEN}"}
            async with stranger.get(f"{base}/metrics", headers=scraper) as metrics:
                assert metrics.status == 200 and "huddle_participants" in await metrics.text()
            async with stranger.get(f"{base}/healthz", headers=scraper) as health:
                assert (await health.json())["database"] == "sqlite"

        # A forged user field is ignored: the post is the token holder's.
        async with aiohttp.ClientSession() as http:
            url = await serve.meet(http, "Forged")
        assert "/h/" in url
        token = serve.token
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as alice:
            async with alice.post(
                f"{base}/api/chat/general/messages", json={"user": "mallory", "text": "hello"}
            ) as posted:
                assert posted.status == 200
            async with alice.get(f"{base}/api/chat/general/messages?user=mallory") as history:
                posts = (await history.json())["posts"]
        assert [p["user"] for p in posts if not p["bot"]] == ["alice", "alice"]

        # A session cookie sent from another site's page is refused (CSRF).
        async with aiohttp.ClientSession(cookie_jar=jar()) as browser:
            async with browser.post(
                f"{base}/api/auth/signin",
                json={"name": "alice", "password": "alice's long password"},
                headers={"Origin": base},
            ) as signed_in:
                assert signed_in.status == 200
            assert (
                await _status(
                    browser,
                    "POST",
                    f"{base}/api/chat/general/messages",
                    json={"text": "/meet From evil"},
                    headers={"Origin": "https://evil.example"},
                )
                == 403
            )
            assert (
                await _status(
                    browser,
                    "POST",
                    f"{base}/api/chat/general/messages",
                    json={"text": "from the page itself"},
                    headers={"Origin": base},
                )
                == 200
            )

        # Guessing passwords: ten wrong ones from this address, then it must wait, even
        # with the right one; the answer says for how long.
        async with aiohttp.ClientSession() as guesser:
            wrong = {"name": "alice", "password": "guess number one"}
            statuses = [
                await _status(
                    guesser, "POST", f"{base}/api/auth/signin", json=wrong, headers={"Origin": base}
                )
                for _ in range(10)
            ]
            assert statuses == [401] * 10
            async with guesser.post(
                f"{base}/api/auth/signin",
                json={"name": "alice", "password": "alice's long password"},
                headers={"Origin": base},
            ) as held:
                assert held.status == 429
                assert int(held.headers["Retry-After"]) >= 1
                assert "Too many sign-in attempts" in (await held.json())["error"]

        # A flood of chat requests from one address is cut off, with Retry-After.
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as flood:
            seen: list[int] = []
            for _ in range(1000):
                seen.append(await _status(flood, "GET", f"{base}/api/chat/channels"))
                if seen[-1] == 429:
                    break
            assert seen[-1] == 429 and seen.count(200) >= 60, seen[-3:]

        # Joins: each is a peer connection; past the burst, this address waits.
        join_url = url.replace(serve.public_url, base)
        path, query = join_url.split("?", 1)
        async with aiohttp.ClientSession() as joiner:
            refused = None
            for _ in range(1000):
                try:
                    ws = await joiner.ws_connect(f"{path}/ws?{query}")
                    await ws.close()
                except aiohttp.WSServerHandshakeError as exc:
                    refused = exc.status
                    break
            assert refused == 429
            async with joiner.get(join_url) as page:
                assert page.status == 429 and "Too many joins" in await page.text()
    finally:
        await serve.stop()
    assert "rate limited" in serve.log() and "join_rate_limited" in serve.log()
    # Secrets never reach the log: not the passwords, not the tokens.
    assert "long password" not in serve.log() and (token or "?") not in serve.log()


async def test_wrong_passcodes_from_one_address_are_cut_off_even_before_the_right_one(
    lan: tuple[Host, Host], tmp_path: Path
) -> None:
    server, _ = lan
    serve = HostedServe(server, tmp_path / "data", admin_address=ADMIN)
    await serve.start()
    try:
        async with aiohttp.ClientSession() as http:
            url = await serve.meet(http, "Board")
            huddle_id = url.split("/h/", 1)[1].split("?", 1)[0]
            [answer] = await serve.say(http, f"/meet passcode {huddle_id} 2468")
            assert "`2468`" in answer["text"]
            path, query = url.replace(serve.public_url, serve.admin_url).split("?", 1)
            # From 198.18.207.2, not loopback: this address has a few tries, then waits.
            async with http.ws_connect(f"{path}/ws?{query}") as ws:
                codes: list[str] = []
                for guess in range(20):
                    await ws.send_json({"type": "join", "name": "M", "passcode": f"{guess:04d}"})
                    codes.append((await ws.receive_json(timeout=20))["code"])
                    if codes[-1] == "rate_limited":
                        break
                assert codes == ["bad_passcode"] * 5 + ["rate_limited"]
                await ws.send_json({"type": "join", "name": "M", "passcode": "2468"})
                limited = await ws.receive_json(timeout=20)
                assert limited["code"] == "rate_limited" and "try again in" in limited["message"]
    finally:
        await serve.stop()
    # Wrong tries are logged; the passcode itself never is.
    assert "passcode_wrong" in serve.log() and "2468" not in serve.log()
