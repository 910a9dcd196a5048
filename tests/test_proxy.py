"""huddle behind a reverse proxy: Debian's Caddy and nginx in front, run from manifests/ as shipped.

Each proxy runs as a subprocess on 127.0.0.1 with its configuration in the test's temp dir (the
manifest itself, only ports and certificate paths substituted as its comments say) in front of
the whole product with HUDDLE_TRUST_PROXY on and no public URL. Through each: the chat page loads
over HTTPS, links come out https:// on the proxy's address, the chat's server-sent events stream
as they happen, the client address is the one the proxy saw, and two browsers trusting the
proxy's CA hold a call whose signaling WebSocket goes through it. Without HUDDLE_TRUST_PROXY the
same headers change nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import signal
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.tls import LocalCA
from tests.conftest import free_port
from tests.media.test_browser_call import assert_receiving, join, participant_ids
from tests.product import RunningHuddle, running_huddle
from tests.trust import browser_trusting, meet_over_https

pytestmark = pytest.mark.timeout(180)

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
#: A loaded machine may take a while to start a proxy or to get a certificate made.
START_WITHIN = 60.0
#: Events come within milliseconds unless something buffers them; generous for a loaded machine.
STREAM_WITHIN = 45.0


@dataclass
class Proxy:
    """A proxy in front of huddle: where to reach it and the CA that signed its certificate."""

    kind: str
    url: str
    ca_file: Path
    log_path: Path

    def ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


async def _wait_until_serving(proxy: Proxy, process: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_WITHIN
    async with aiohttp.ClientSession() as http:
        while loop.time() < deadline and process.returncode is None:
            if proxy.ca_file.exists():
                try:
                    async with http.get(f"{proxy.url}/healthz", ssl=proxy.ssl()) as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, ssl.SSLError):
                    pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"{proxy.kind} did not serve:\n{proxy.log_path.read_text()[-3000:]}")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=15)
        except TimeoutError:
            process.kill()
            await process.wait()


def _program(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        raise RuntimeError(f"{name} not found: run `make test` (it installs Debian's {name})")
    return path


@dataclass
class ProxyRun:
    """How to start one proxy, with its configuration written, and what it will serve."""

    proxy: Proxy
    command: list[str]
    env: dict[str, str]


def caddy(root: Path, upstream: int) -> ProxyRun:
    """Caddy with manifests/Caddyfile imported as is; certificates from Caddy's own local CA."""
    root.mkdir(parents=True)
    port, http_port = free_port(), free_port()
    config = root / "Caddyfile"
    config.write_text(
        "{\n"
        "\tadmin off\n"
        f"\tstorage file_system {root / 'storage'}\n"
        "\tlocal_certs\n"
        "\tskip_install_trust\n"
        "\tdefault_bind 127.0.0.1\n"
        # Caddy's default grace is eternal: a stop would wait for the open chat event streams.
        "\tgrace_period 1s\n"
        f"\thttp_port {http_port}\n"
        f"\thttps_port {port}\n"
        "}\n\n"
        f"import {MANIFESTS / 'Caddyfile'}\n"
    )
    env = {
        **os.environ,
        "HOME": str(root),
        "XDG_DATA_HOME": str(root / "data"),
        "XDG_CONFIG_HOME": str(root / "config"),
        # The manifest's two placeholders: the site (the proxy's address) and huddle's address.
        "HUDDLE_SITE": f"https://127.0.0.1:{port}",
        "HUDDLE_UPSTREAM": f"127.0.0.1:{upstream}",
    }
    ca_file = root / "storage" / "pki" / "authorities" / "local" / "root.crt"
    return ProxyRun(
        Proxy("caddy", f"https://127.0.0.1:{port}", ca_file, root / "output.log"),
        [_program("caddy"), "run", "--config", str(config), "--adapter", "caddyfile"],
        env,
    )


def _substitute(text: str, old: str, new: str) -> str:
    # A manifest edit that drops what the test substitutes must fail here, not test something else.
    assert old in text, f"manifests/nginx.conf no longer has {old!r}"
    return text.replace(old, new)


def nginx(root: Path, upstream: int) -> ProxyRun:
    """nginx with manifests/nginx.conf included (ports and certificate paths substituted)."""
    root.mkdir(parents=True)
    port, http_port = free_port(), free_port()
    ca = LocalCA(root / "ca")
    files = ca.ensure(["127.0.0.1", "localhost"]).files
    site = (MANIFESTS / "nginx.conf").read_text()
    site = _substitute(site, "listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
    site = _substitute(site, "listen 80;", f"listen 127.0.0.1:{http_port};")
    site = "\n".join(line for line in site.splitlines() if "listen [::]:" not in line)
    site = _substitute(site, "server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream};")
    site = _substitute(
        site, "/etc/letsencrypt/live/huddle.example.com/fullchain.pem", str(files.cert)
    )
    site = _substitute(site, "/etc/letsencrypt/live/huddle.example.com/privkey.pem", str(files.key))
    (root / "huddle.conf").write_text(site)
    temp = " ".join(
        f"{kind}_temp_path {root / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root nginx's workers would switch to www-data, who cannot enter the test's temp dir.
    user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.getuid() == 0 else ""
    (root / "nginx.conf").write_text(
        f"daemon off;\n{user}\nworker_processes 1;\npid {root / 'nginx.pid'};\n"
        f"error_log {root / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n access_log {root / 'access.log'};\n {temp}\n"
        f" include {root / 'huddle.conf'};\n}}\n"
    )
    config = ["-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")]
    return ProxyRun(
        Proxy("nginx", f"https://127.0.0.1:{port}", ca.ca_cert, root / "error.log"),
        [_program("nginx"), *config],
        dict(os.environ),
    )


@asynccontextmanager
async def running_proxy(run: ProxyRun) -> AsyncIterator[Proxy]:
    """Start the proxy, wait until it serves huddle's /healthz over HTTPS, stop it afterwards."""
    with (run.proxy.log_path.parent / "output.log").open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *run.command, env=run.env, stdout=output, stderr=output
        )
    try:
        await _wait_until_serving(run.proxy, process)
        yield run.proxy
    finally:
        await _stop(process)


PROXIES = {"caddy": caddy, "nginx": nginx}


async def _whoami(request: web.Request) -> web.Response:
    """A test-only probe: the request as huddle's handlers see it."""
    return web.json_response(
        {
            "scheme": request.scheme,
            "secure": request.secure,
            "host": request.host,
            "remote": request.remote,
        }
    )


def _probe(app: web.Application) -> None:
    app.router.add_get("/test/whoami", _whoami)


@dataclass
class Behind:
    huddle: RunningHuddle
    proxy: Proxy
    #: Bob's API token: behind a proxy the web chat has accounts.
    token: str


@pytest.fixture(params=sorted(PROXIES))
async def behind(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Behind]:
    """The product with HUDDLE_TRUST_PROXY and no public URL, behind Caddy or nginx."""
    async with running_huddle(tmp_path / "data", routes=_probe, trust_proxy=True) as huddle:
        token = await account(huddle, "bob")
        upstream = int(huddle.url.rsplit(":", 1)[1])
        run = PROXIES[request.param](tmp_path / request.param, upstream)
        async with running_proxy(run) as proxy:
            yield Behind(huddle, proxy, token)


PASSWORD = "correct horse battery"


async def account(huddle: RunningHuddle, name: str) -> str:
    """An account for ``name`` (password :data:`PASSWORD`) and an API token of theirs."""
    await huddle.parts.accounts.add_user(name, PASSWORD)
    return await huddle.parts.accounts.issue_token(name)


async def _read_event(stream: aiohttp.StreamReader) -> dict[str, Any]:
    """The next ``post`` event of a server-sent event stream."""
    event = ""
    while True:
        line = (await stream.readline()).decode()
        if line == "":
            raise AssertionError("the event stream ended")
        line = line.rstrip("\n")
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: ") and event == "post":
            data: dict[str, Any] = json.loads(line[len("data: ") :])
            return data


async def test_through_the_proxy_pages_load_links_are_https_and_events_stream(
    behind: Behind,
) -> None:
    proxy = behind.proxy
    # The client connects from 127.0.0.2 and sends a forged X-Forwarded-For of its own.
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), ssl=proxy.ssl())
    # A browser's cookie jar (aiohttp's default keeps none for an IP address).
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as browser:
        # Behind a proxy the chat has accounts: the page sends a stranger to sign in, and the
        # session cookie, set over the proxy's HTTPS, never travels in clear.
        async with browser.get(f"{proxy.url}/chat/general") as page:
            assert page.status == 200 and "account.js" in await page.text()
            assert page.url.path == "/signin"
            assert page.headers["Strict-Transport-Security"].startswith("max-age=")
        async with browser.post(
            f"{proxy.url}/api/auth/signin",
            json={"name": "bob", "password": PASSWORD},
            headers={"Origin": proxy.url},
        ) as signed_in:
            assert signed_in.status == 200
            cookie = signed_in.cookies["huddle_session"]
            assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"
        async with browser.get(f"{proxy.url}/chat/general") as page:
            assert page.status == 200 and "chat.js" in await page.text()

    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), ssl=proxy.ssl())
    bearer = {"Authorization": f"Bearer {behind.token}"}
    async with aiohttp.ClientSession(connector=connector, headers=bearer) as http:
        async with http.get(
            f"{proxy.url}/test/whoami", headers={"X-Forwarded-For": "203.0.113.9"}
        ) as response:
            seen = await response.json()
        assert seen == {
            "scheme": "https",
            "secure": True,
            "host": proxy.url.removeprefix("https://"),
            "remote": "127.0.0.2",
        }

        # Alice has the channel open (server-sent events) while Bob types /meet. A proxy that
        # buffers holds back the stream's headers and events: bounded, and said so.
        try:
            async with asyncio.timeout(STREAM_WITHIN):
                card, streamed = await _meet_while_streaming(http, proxy.url)
        except TimeoutError:
            raise AssertionError(
                f"no event through {proxy.kind} within {STREAM_WITHIN} s: is it buffering?"
            ) from None
        # The links name the proxy's https:// address, from X-Forwarded-Proto and -Host.
        assert card["buttons"][0]["url"].startswith(f"{proxy.url}/h/")
        assert streamed["buttons"][0]["url"].startswith(f"{proxy.url}/h/")


async def _meet_while_streaming(
    http: aiohttp.ClientSession, base: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bob's /meet card as his POST returned it and as Alice's open event stream got it."""
    async with http.get(f"{base}/api/chat/general/events", params={"user": "alice"}) as events:
        assert events.status == 200
        assert await events.content.readline() == b": connected\n"
        async with http.post(
            f"{base}/api/chat/general/messages",
            json={"user": "bob", "text": "/meet Behind the proxy"},
        ) as response:
            assert response.status == 200
            card, _host_link = (await response.json())["posts"]
        # It reaches Alice while her stream stays open: nothing held it back.
        streamed = await _read_event(events.content)
        while streamed["id"] != card["id"]:
            streamed = await _read_event(events.content)
        return card, streamed


async def test_a_call_through_the_proxy_shows_each_the_others_video(
    behind: Behind, tmp_path: Path
) -> None:
    proxy = behind.proxy
    url = await meet_over_https(proxy.url, proxy.ssl(), "/meet Proxied call", behind.token)
    assert url.startswith(f"{proxy.url}/h/")
    async with browser_trusting(tmp_path / "home", [proxy.ca_file]) as browser:
        # Both pages and their signaling sockets go through the proxy; media goes to huddle.
        alice = await join(browser, proxy.url, url, "Alice")
        bob = await join(browser, proxy.url, url, "Bob")
        assert await alice.evaluate("window.isSecureContext")
        ids = await participant_ids(bob)
        await assert_receiving(alice, [ids["Bob"]], within=30)
        await assert_receiving(bob, [ids["Alice"]], within=30)


FORGED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "huddle.example.test",
    "X-Forwarded-For": "203.0.113.9",
}


async def _seen_and_link(
    huddle: RunningHuddle, headers: dict[str, str], token: str | None = None
) -> tuple[Any, str]:
    """The probe's view of a request with ``headers``, and the Join link of a /meet sent so."""
    direct = f"http://127.0.0.1:{huddle.parts.settings.port}"
    async with huddle.http.get(f"{direct}/test/whoami", headers=headers) as response:
        seen = await response.json()
    bearer = {"Authorization": f"Bearer {token}"} if token else {}
    async with huddle.http.post(
        f"{direct}/api/chat/general/messages",
        json={"user": "mallory", "text": "/meet Forged"},
        headers={**headers, **bearer},
    ) as response:
        card, _host_link = (await response.json())["posts"]
    link: str = card["buttons"][0]["url"]
    return seen, link


async def test_forwarded_headers_change_nothing_without_trust_proxy(tmp_path: Path) -> None:
    async with running_huddle(tmp_path / "data", routes=_probe) as huddle:
        seen, link = await _seen_and_link(huddle, FORGED)
    host = huddle.url.removeprefix("http://")
    assert seen == {"scheme": "http", "secure": False, "host": host, "remote": "127.0.0.1"}
    assert link.startswith(f"{huddle.url}/h/")


async def test_with_trust_proxy_forwarded_headers_are_believed(tmp_path: Path) -> None:
    async with running_huddle(tmp_path / "one", routes=_probe, trust_proxy=True) as huddle:
        token = await account(huddle, "mallory")
        seen, link = await _seen_and_link(huddle, FORGED, token)
        assert seen == {
            "scheme": "https",
            "secure": True,
            "host": "huddle.example.test",
            "remote": "203.0.113.9",
        }
        assert link.startswith("https://huddle.example.test/h/")
        # Malformed values are dropped one by one; of a list, the last (the proxy's own) counts.
        seen, _ = await _seen_and_link(
            huddle,
            {
                "X-Forwarded-Proto": "gopher",
                "X-Forwarded-Host": "evil.test/path?x",
                "X-Forwarded-For": "198.51.100.1, 192.0.2.7",
            },
            token,
        )
        assert seen["scheme"] == "http" and seen["remote"] == "192.0.2.7"
        assert seen["host"] == huddle.url.removeprefix("http://")

    # A configured public URL pins links whatever the proxy says.
    async with running_huddle(
        tmp_path / "two",
        routes=_probe,
        trust_proxy=True,
        public_url="https://chat.example.org",
    ) as huddle:
        _, link = await _seen_and_link(huddle, FORGED, await account(huddle, "mallory"))
        assert link.startswith("https://chat.example.org/h/")
