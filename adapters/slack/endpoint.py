"""HTTP mode: ``POST /slack/events`` on huddle's own aiohttp server, handed to Bolt.

Bolt verifies the signature (HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the signing secret,
timestamp within 5 minutes) and answers 401 when it is wrong. Headers Bolt cannot even parse (a
timestamp that is not an integer, a signature with non-ASCII bytes) make it raise, which would be a
500; they are refused here first with the same 401, since they are just as unauthenticated.
"""

from __future__ import annotations

import json
import logging
import re

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

log = logging.getLogger("huddle.slack.http")

PATH = "/slack/events"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


def _unauthorized() -> web.Response:
    return web.Response(
        status=401,
        text=json.dumps({"error": "invalid request"}),
        content_type="application/json",
    )


class EventsEndpoint:
    """Slash commands and interactivity, signed by Slack, in; Bolt's answers out."""

    def __init__(self, app: AsyncApp) -> None:
        self.app = app

    def add_routes(self, app: web.Application) -> None:
        """Mount ``POST /slack/events`` (the slash command and interactivity Request URL)."""
        app.router.add_post(PATH, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        """Check the signature headers' shape, then let Bolt verify and dispatch."""
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
            log.info(
                "refused unsigned request remote=%s timestamp=%r", request.remote, timestamp[:20]
            )
            return _unauthorized()
        raw = await request.read()
        # Slack signs UTF-8 bytes; anything else cannot match, and 'replace' keeps it a 401.
        body = raw.decode("utf-8", errors="replace")
        bolt_request = AsyncBoltRequest(
            body=body,
            query=request.query_string,
            headers={key.lower(): value for key, value in request.headers.items()},
        )
        response = await self.app.async_dispatch(bolt_request)
        return await to_aiohttp_response(response)
