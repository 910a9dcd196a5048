"""HTTPS built into `huddle serve`: a real process, real certificates, a browser that trusts them.

`--tls self-signed` makes a local CA once and reuses it; a Chromium that trusts that CA (in its
own NSS database, nothing ignored) opens the join page as a secure context, gets the camera and
holds a call. Certificate files are checked at start and swapped on SIGHUP for new connections.
Plain HTTP beyond loopback warns that cameras will not work.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import signal
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509

from adapters.tls import LocalCA, fingerprint
from tests.media.test_browser_call import assert_receiving, join, participant_ids
from tests.processes import ServeProcess
from tests.trust import browser_trusting, meet_over_https

pytestmark = pytest.mark.timeout(180)

#: Generous bounds for a loaded machine: a start, a reload, a refused start.
WITHIN = 60.0


def log_lines(serve: ServeProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in serve.log().splitlines() if line.startswith("{")]


async def served_certificate(
    port: int, ca_file: Path, server_hostname: str = "127.0.0.1"
) -> x509.Certificate:
    """The certificate a new TLS connection to 127.0.0.1:``port`` gets, verified by ``ca_file``."""
    context = ssl.create_default_context(cafile=str(ca_file))
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=server_hostname
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der)
    finally:
        writer.close()


async def wait_for(condition: Any, what: str, within: float = WITHIN) -> None:
    """Poll ``condition()`` (async) until true; fail saying ``what`` did not happen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what} within {within} s")
        await asyncio.sleep(0.2)


async def test_self_signed_ca_is_made_once_and_reused_and_says_how_to_trust_it(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    ca_file = data / "tls" / "ca.pem"
    first = await ServeProcess(
        data, name="first", args=["--tls", "self-signed"], ca_file=ca_file
    ).start()
    try:
        # /healthz answered over HTTPS verified against the CA huddle made (ServeProcess.start).
        ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
        assert (data / "tls" / "ca-key.pem").stat().st_mode & 0o077 == 0
        leaf = await served_certificate(first.port, ca_file)
        said = first.log()
        assert fingerprint(ca) in said
        assert "update-ca-certificates" in said and "certutil" in said and "Firefox" in said
        assert "Windows" in said and "macOS" in said and "Phones must install the CA" in said
        # Phones fetch the CA from the server itself.
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{first.url}/tls/ca.pem", ssl=first.ssl()) as response,
        ):
            assert await response.read() == ca_file.read_bytes()
        # With TLS on, links are https:// by default (ServeProcess set no other public URL).
        link = await meet_over_https(first.url, first.ssl(), "/meet Secure")
        assert link.startswith(f"https://127.0.0.1:{first.port}/h/")
    finally:
        await first.stop()

    # The same data dir again: the same CA and the same server certificate.
    again = await ServeProcess(
        data, name="again", args=["--tls", "self-signed"], ca_file=ca_file
    ).start()
    try:
        assert x509.load_pem_x509_certificate(ca_file.read_bytes()) == ca
        assert (await served_certificate(again.port, ca_file)).serial_number == leaf.serial_number
        assert "local CA created" not in again.log() and "certificate issued" not in again.log()
    finally:
        await again.stop()

    # A new public name: a new server certificate for it, from the same CA.
    renamed = await ServeProcess(
        data,
        name="renamed",
        args=["--tls", "self-signed"],
        ca_file=ca_file,
        public_url="https://huddle.lan.test:8443",
    ).start()
    try:
        assert x509.load_pem_x509_certificate(ca_file.read_bytes()) == ca
        new = await served_certificate(renamed.port, ca_file, server_hostname="huddle.lan.test")
        assert new.serial_number != leaf.serial_number
        new.verify_directly_issued_by(ca)
    finally:
        await renamed.stop()


def test_a_server_certificate_near_expiry_is_reissued_by_the_same_ca(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    names = ["huddle.lan.test", "localhost", "127.0.0.1", "::1"]
    first = LocalCA(tmp_path, clock=lambda: now).ensure(names)
    assert first.ca_created and first.leaf_issued
    assert not LocalCA(tmp_path, clock=lambda: now).ensure(names).leaf_issued
    # 370 days on, the 397-day certificate has less than 30 days left.
    later = LocalCA(tmp_path, clock=lambda: now + dt.timedelta(days=370)).ensure(names)
    assert later.leaf_issued and not later.ca_created
    cert = x509.load_pem_x509_certificate(later.files.cert.read_bytes())
    assert cert.not_valid_after_utc > now + dt.timedelta(days=370 + 300)
    cert.verify_directly_issued_by(LocalCA(tmp_path).ca_certificate())


async def test_a_browser_trusting_the_ca_joins_over_https_with_its_camera(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ca_file = data / "tls" / "ca.pem"
    serve = await ServeProcess(data, args=["--tls", "self-signed"], ca_file=ca_file).start()
    try:
        url = await meet_over_https(serve.url, serve.ssl(), "/meet Over HTTPS")
        assert url.startswith("https://")

        # A browser that does not trust the CA is refused: trust is what the other one has.
        async with browser_trusting(tmp_path / "stranger", []) as stranger:
            page = await stranger.new_page()
            with pytest.raises(Exception, match="ERR_CERT_AUTHORITY_INVALID"):
                await page.goto(url)

        async with browser_trusting(tmp_path / "home", [ca_file]) as browser:
            # join() waits for the camera preview: getUserMedia worked on this page.
            alice = await join(browser, serve.url, url, "Alice")
            assert await alice.evaluate("window.isSecureContext") is True
            assert await alice.evaluate("location.protocol") == "https:"
            bob = await join(browser, serve.url, url, "Bob")
            ids = await participant_ids(bob)
            await assert_receiving(alice, [ids["Bob"]], within=30)
            await assert_receiving(bob, [ids["Alice"]], within=30)
    finally:
        await serve.stop()


def _certificate_pair(ca: LocalCA, name: str, into: Path) -> tuple[bytes, bytes, str]:
    """A server certificate for 127.0.0.1 and ``name`` from ``ca``: (cert PEM, key PEM, sha256)."""
    files = ca.ensure([name, "127.0.0.1"]).files
    cert, key = files.cert.read_bytes(), files.key.read_bytes()
    into.mkdir(parents=True, exist_ok=True)
    return cert, key, fingerprint(x509.load_pem_x509_certificate(cert))


async def test_sighup_serves_new_certificate_files_to_new_connections(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path / "ca")
    first_cert, first_key, first_print = _certificate_pair(ca, "one.test", tmp_path)
    second_cert, second_key, second_print = _certificate_pair(ca, "two.test", tmp_path)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(first_cert)
    key.write_bytes(first_key)
    serve = await ServeProcess(
        tmp_path / "data",
        args=["--tls-cert", str(cert), "--tls-key", str(key)],
        ca_file=ca.ca_cert,
    ).start()
    try:
        assert fingerprint(await served_certificate(serve.port, ca.ca_cert)) == first_print
        # A connection opened before the swap.
        context = ssl.create_default_context(cafile=str(ca.ca_cert))
        reader, writer = await asyncio.open_connection("127.0.0.1", serve.port, ssl=context)

        # certbot-style renewal: new files, then SIGHUP (systemd's ExecReload).
        cert.write_bytes(second_cert)
        key.write_bytes(second_key)
        assert serve.process is not None
        serve.process.send_signal(signal.SIGHUP)

        async def new_connections_get_the_new_one() -> bool:
            return fingerprint(await served_certificate(serve.port, ca.ca_cert)) == second_print

        await wait_for(new_connections_get_the_new_one, "the new certificate was not served")
        # The old connection keeps its certificate and still works.
        old = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert hashlib.sha256(old).hexdigest() == first_print.replace(":", "").lower()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.readline(), WITHIN)).startswith(b"HTTP/1.1 200")
        writer.close()

        # A broken file on SIGHUP: a log line says why, and the last good certificate stays.
        cert.write_text("not a certificate\n")
        serve.process.send_signal(signal.SIGHUP)

        async def reload_failure_logged() -> bool:
            return any(
                "tls reload failed" in line["msg"] and str(cert) in line["msg"]
                for line in log_lines(serve)
            )

        await wait_for(reload_failure_logged, "no log line for the broken certificate")
        assert fingerprint(await served_certificate(serve.port, ca.ca_cert)) == second_print
        # A key that is not the certificate's is refused the same way.
        cert.write_bytes(first_cert)
        serve.process.send_signal(signal.SIGHUP)

        async def mismatch_logged() -> bool:
            return any("is not the key of" in line["msg"] for line in log_lines(serve))

        await wait_for(mismatch_logged, "no log line for the mismatched key")
        assert fingerprint(await served_certificate(serve.port, ca.ca_cert)) == second_print
    finally:
        await serve.stop()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("garbage certificate", "no PEM certificate in it"),
        ("missing key", "no such file"),
        ("someone else's key", "is not the key of the certificate"),
        ("certificate without key", "HUDDLE_TLS_KEY is not"),
    ],
)
async def test_a_bad_certificate_stops_the_start_with_a_clear_error(
    tmp_path: Path, case: str, expected: str
) -> None:
    ca = LocalCA(tmp_path / "ca")
    good_cert, good_key, _ = _certificate_pair(ca, "one.test", tmp_path)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(good_cert)
    key.write_bytes(good_key)
    env = {"HUDDLE_TLS_CERT": str(cert), "HUDDLE_TLS_KEY": str(key)}
    if case == "garbage certificate":
        cert.write_text("hello\n")
    elif case == "missing key":
        key.unlink()
    elif case == "someone else's key":
        _, other_key, _ = _certificate_pair(LocalCA(tmp_path / "other"), "two.test", tmp_path)
        key.write_bytes(other_key)
    else:
        del env["HUDDLE_TLS_KEY"]
    serve = ServeProcess(tmp_path / "data", env)
    with pytest.raises(AssertionError, match="did not start"):
        await serve.start()
    await asyncio.wait_for(serve.wait_dead(), WITHIN)
    said = serve.log()
    assert serve.process is not None and serve.process.returncode == 2, said[-2000:]
    plain = [line for line in said.splitlines() if line.startswith("huddle serve: ")]
    assert len(plain) == 1 and expected in plain[0], said[-2000:]
    assert "serving url=" not in said


WARNING = "browsers on other machines refuse camera and microphone"


@pytest.mark.parametrize(
    ("args", "env", "warns"),
    [
        (["--host", "0.0.0.0"], {}, True),
        (["--host", "0.0.0.0", "--tls", "self-signed"], {}, False),
        (["--host", "0.0.0.0"], {"HUDDLE_TRUST_PROXY": "true"}, False),
        ([], {}, False),
    ],
    ids=["all-interfaces-plain-http", "with-tls", "behind-a-proxy", "loopback"],
)
async def test_plain_http_beyond_loopback_warns_that_cameras_will_not_work(
    tmp_path: Path, args: list[str], env: dict[str, str], warns: bool
) -> None:
    data = tmp_path / "data"
    tls = "--tls" in args
    serve = ServeProcess(data, env, args=args, ca_file=data / "tls" / "ca.pem" if tls else None)
    await serve.start()
    await serve.stop()
    logged = [
        line for line in log_lines(serve) if line["level"] == "warning" and WARNING in line["msg"]
    ]
    plain = [line for line in serve.log().splitlines() if line.startswith("huddle serves plain")]
    if warns:
        assert len(logged) == 1 and "--tls self-signed" in logged[0]["msg"]
        assert "HUDDLE_TRUST_PROXY" in logged[0]["msg"]
        assert len(plain) == 1 and WARNING in plain[0]
    else:
        assert logged == [] and plain == []
