"""`huddle serve`: run the whole product in one process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from adapters import accounts_cli
from adapters import tls as server_tls
from adapters.access_log import RedactingAccessLogger, access_logger
from adapters.server import build
from bot import logs
from bot.config import Settings, media_workers, tls_mode

log = logging.getLogger("huddle.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="huddle", description="Chat bot with video huddles.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the web chat, the bot and the media server")
    serve.add_argument("--host", help="address to listen on (HUDDLE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (HUDDLE_PORT, default 8080)")
    serve.add_argument(
        "--data-dir", type=Path, help="where the SQLite file and secret live (default .huddle)"
    )
    serve.add_argument(
        "--media-workers",
        metavar="N|auto",
        help="run media in N worker processes, 'auto' for one per core "
        "(HUDDLE_MEDIA_WORKERS, default 0: in this process)",
    )
    serve.add_argument(
        "--tls",
        metavar="self-signed",
        help="HTTPS with a local CA and certificate made into the data dir (HUDDLE_TLS)",
    )
    serve.add_argument(
        "--tls-cert", type=Path, help="HTTPS with this PEM certificate chain (HUDDLE_TLS_CERT)"
    )
    serve.add_argument("--tls-key", type=Path, help="and this PEM private key (HUDDLE_TLS_KEY)")
    accounts_cli.add_parser(commands)
    return parser


def _say(text: str) -> None:
    # Start-up advice for whoever runs `huddle serve` in a terminal, beside the JSON log lines.
    print(text, file=sys.stderr, flush=True)


def _start_tls(settings: Settings) -> server_tls.ServerTLS | None:
    """Load (or make) the certificate and say what a person needs to know about it."""
    tls = server_tls.server_certificate(settings)
    if tls is not None and tls.local_ca is not None:
        ca = tls.local_ca.ca_certificate()
        log.info(
            "tls self-signed ca=%s sha256=%s", tls.local_ca.ca_cert, server_tls.fingerprint(ca)
        )
        _say(
            server_tls.trust_instructions(
                tls.local_ca.ca_cert, server_tls.fingerprint(ca), settings.public_url
            )
        )
    warning = server_tls.plain_http_warning(settings, tls)
    if warning:
        log.warning(warning)
        _say(warning)
    host = urlsplit(settings.public_url).hostname or ""
    if host in ("0.0.0.0", "::") and not settings.links_follow_proxy:
        advice = (
            f"links would point at {host}, which no browser can open: set "
            f"HUDDLE_PUBLIC_URL to this machine's address "
            f"({urlsplit(settings.public_url).scheme}://192.0.2.10:{settings.port})"
        )
        log.warning(advice)
        _say(f"huddle: {advice}")
    if settings.links_follow_proxy:
        log.info(
            "links follow the reverse proxy's X-Forwarded-Proto/-Host until HUDDLE_PUBLIC_URL "
            "is set (set it: links made before the first request, for Slack or reminders, "
            "use url=%s)",
            settings.public_url,
        )
    return tls


async def serve(settings: Settings) -> None:
    """Run until cancelled (Ctrl-C or SIGTERM); SIGHUP re-reads the TLS certificate."""
    settings.resolve()
    # Before anything opens: a certificate that cannot be served stops the start with a reason.
    tls = _start_tls(settings)
    parts = await build(settings)
    if tls is not None and tls.local_ca is not None:
        server_tls.add_ca_route(parts.app, tls.local_ca.ca_cert)
    access_log, access = access_logger(settings.trust_proxy)
    runner = web.AppRunner(
        parts.app,
        access_log=access_log,
        access_log_format=access,
        access_log_class=RedactingAccessLogger,
    )
    await runner.setup()
    site = web.TCPSite(
        runner, settings.host, settings.port, ssl_context=tls.certificate.context if tls else None
    )
    await site.start()
    log.info("serving url=%s database=%s", settings.public_url, parts.store.dialect)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # A clean stop tells everyone in a call ("server shutting down") and closes the database.
        loop.add_signal_handler(signum, stop.set)
    # systemd's ExecReload sends SIGHUP: new connections get the certificate files as they are now.
    loop.add_signal_handler(
        signal.SIGHUP,
        tls.certificate.reload if tls else lambda: log.info("SIGHUP: no TLS certificate to reload"),
    )
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `huddle` console script."""
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    if args.command == "user":
        if args.data_dir:
            settings.data_dir = Path(args.data_dir)
        logs.setup("WARNING")
        raise SystemExit(asyncio.run(accounts_cli.run(args, settings)))
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    if args.data_dir:
        settings.data_dir = args.data_dir
    if args.media_workers is not None:
        try:
            settings.media_workers = media_workers(args.media_workers, "--media-workers")
        except ValueError as exc:
            _parser().error(str(exc))
    if args.tls is not None:
        try:
            settings.tls_mode = tls_mode(args.tls, "--tls")
        except ValueError as exc:
            _parser().error(str(exc))
    if args.tls_cert:
        settings.tls_cert = args.tls_cert
    if args.tls_key:
        settings.tls_key = args.tls_key
    logs.setup(settings.log_level)
    try:
        asyncio.run(serve(settings))
    except server_tls.TLSError as exc:
        log.error("tls cannot start: %s", exc)
        _say(f"huddle serve: {exc}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
