"""`huddle serve`: run the whole product in one process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web

from adapters.server import build
from bot import logs
from bot.config import Settings, media_workers

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
    return parser


async def serve(settings: Settings) -> None:
    """Run until cancelled (Ctrl-C or SIGTERM)."""
    parts = await build(settings)
    runner = web.AppRunner(parts.app, access_log=logging.getLogger("huddle.http"))
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info("serving url=%s database=%s", settings.public_url, parts.store.dialect)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # A clean stop tells everyone in a call ("server shutting down") and closes the database.
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `huddle` console script."""
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
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
    logs.setup(settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
