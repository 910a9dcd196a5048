"""A colleague on another host joins over HTTPS with `huddle serve --tls self-signed`.

    colleague 198.18.4.2 ----- 198.18.4.1 server (huddle serve --tls self-signed)

Browsers give cameras only to secure contexts: over plain http:// from another machine the call
cannot start. With the certificate huddle made (its CA trusted in the colleague's browser, as the
README says to do), the join page is a secure context and the call runs both ways.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright

from tests.net.calls import assert_receiving, join_call, participant_ids
from tests.net.hosts import Host, Network, server_and_colleague
from tests.net.serve import HostedServe, chromium_on
from tests.trust import nss_home

pytestmark = pytest.mark.timeout(240)

SERVER, COLLEAGUE, ADMIN = "198.18.4.1", "198.18.4.2", "198.18.203.2"


@pytest.fixture
def lan() -> Iterator[tuple[Host, Host, Network]]:
    with server_and_colleague(SERVER, COLLEAGUE, ADMIN) as hosts:
        yield hosts


async def test_a_colleague_joins_over_https_and_both_see_each_other(
    lan: tuple[Host, Host, Network], tmp_path: Path
) -> None:
    server, colleague, _ = lan
    serve = HostedServe(
        server, tmp_path / "data", admin_address=ADMIN, args=("--tls", "self-signed")
    )
    serve.public_url = f"https://{SERVER}:{serve.port}"
    serve.admin_url = f"https://{ADMIN}:{serve.port}"
    serve.env["HUDDLE_PUBLIC_URL"] = serve.public_url
    ca = tmp_path / "data" / "tls" / "ca.pem"
    await serve.start(ca=ca)
    try:
        async with aiohttp.ClientSession() as http:
            url = await serve.meet(http, "Over HTTPS")
        assert url.startswith(f"https://{SERVER}:{serve.port}/h/")
        home = nss_home(tmp_path / "home", [ca])
        async with async_playwright() as pw:
            async with (
                chromium_on(pw, server, tmp_path, env={"HOME": str(home)}) as local,
                chromium_on(pw, colleague, tmp_path, env={"HOME": str(home)}) as remote,
            ):
                own = url.replace(f"https://{SERVER}:", "https://127.0.0.1:")
                alice = await join_call(local, f"https://127.0.0.1:{serve.port}", own, "Alice")
                bob = await join_call(remote, serve.public_url, url, "Bob")
                assert await bob.evaluate("window.isSecureContext") is True
                ids = await participant_ids(bob)
                await assert_receiving(bob, [ids["Alice"]], within=30)
                await assert_receiving(alice, [ids["Bob"]], within=30)
    finally:
        await serve.stop()


async def test_over_plain_http_from_another_host_the_page_says_cameras_need_https(
    lan: tuple[Host, Host, Network], tmp_path: Path
) -> None:
    server, colleague, _ = lan
    serve = HostedServe(server, tmp_path / "data", admin_address=ADMIN, public_host=SERVER)
    await serve.start()
    try:
        async with aiohttp.ClientSession() as http:
            url = await serve.meet(http, "Over HTTP")
        async with async_playwright() as pw, chromium_on(pw, colleague, tmp_path) as remote:
            page = await (await remote.new_context()).new_page()
            await page.goto(url)
            note = page.locator("#preview-note")
            await note.filter(has_text="needs HTTPS").wait_for(timeout=30_000)
            assert await page.evaluate("window.isSecureContext") is False
        # And the server said so when it started, bound beyond loopback without TLS.
        assert "camera" in serve.log().lower()
    finally:
        await serve.stop()
