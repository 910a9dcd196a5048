"""The Web API clients the adapter talks to Slack with, sharing one HTTP connection pool.

Two retry policies, because a retry is only safe when repeating the request cannot do harm:

* :attr:`SlackApi.web` retries rate limits (429, after ``Retry-After``), server errors (500/503)
  and dropped connections: for reads and for writes that are idempotent (``chat.update``, ...).
* :attr:`SlackApi.web_once` retries only 429, which Slack answers *before* doing anything. A 5xx or
  a dropped connection after ``chat.postMessage`` may hide a message that was posted; repeating it
  blindly would post it twice, so the caller looks before it posts again (see ``posts.py``).
"""

from __future__ import annotations

import logging

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

DEFAULT_API_URL = "https://slack.com/api/"
#: Per request; well under the outbox's 30 s lease, so a hung Slack never outlives a claim.
REQUEST_TIMEOUT = 10


def _sdk_logger() -> logging.Logger:
    """slack_sdk's logger for our clients, its level set to what logging is configured for.

    slack_sdk formats a debug line for every request and every response (bodies included) unless
    its logger's *own* level is above DEBUG: it checks ``logger.level``, which is NOTSET (so 0,
    "inherit") for a logger nobody configured, rather than the effective level.
    """
    sdk_log = logging.getLogger("huddle.slack.sdk")
    sdk_log.setLevel(sdk_log.getEffectiveLevel())
    return sdk_log


def _retrying() -> list[AsyncRetryHandler]:
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncRateLimitErrorRetryHandler(max_retry_count=3),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ]


def slack_error(exc: BaseException) -> str | None:
    """Slack's ``error`` code when ``exc`` is a definite refusal (``ok: false``), else None.

    None means the outcome is unknown: a 5xx, a dropped connection or a timeout may hide a
    request that Slack carried out.
    """
    if not isinstance(exc, SlackApiError):
        return None
    response = exc.response
    data = response.data if response is not None else None
    if response is None or response.status_code >= 500 or not isinstance(data, dict):
        return None
    if data.get("ok") is not False:
        return None
    error = data.get("error")
    return error if isinstance(error, str) else "unknown_error"


class SlackApi:
    """One HTTP session, the bot token and the API base URL, for every call the adapter makes."""

    def __init__(self, bot_token: str, api_url: str = "") -> None:
        self.base_url = (api_url or DEFAULT_API_URL).rstrip("/") + "/"
        sdk_log = _sdk_logger()
        self.web = AsyncWebClient(
            token=bot_token,
            base_url=self.base_url,
            timeout=REQUEST_TIMEOUT,
            logger=sdk_log,
            retry_handlers=_retrying(),
        )
        self.web_once = AsyncWebClient(
            token=bot_token,
            base_url=self.base_url,
            timeout=REQUEST_TIMEOUT,
            logger=sdk_log,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=3)],
        )
        #: Token-less: Bolt gives each request its own copy; the token comes from ``authorize``.
        self.bolt = AsyncWebClient(
            base_url=self.base_url,
            timeout=REQUEST_TIMEOUT,
            logger=sdk_log,
            retry_handlers=_retrying(),
        )
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Start the shared connection pool (clients used before this open one per request)."""
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
            )
            for client in (self.web, self.web_once, self.bolt):
                client.session = self.session

    async def close(self) -> None:
        """Close the connection pool."""
        if self.session is not None:
            for client in (self.web, self.web_once, self.bolt):
                client.session = None
            await self.session.close()
            self.session = None

    def response_url(self, url: str) -> AsyncWebhookClient:
        """A client for a slash command's ``response_url`` (ephemeral answers)."""
        return AsyncWebhookClient(
            url, timeout=REQUEST_TIMEOUT, session=self.session, retry_handlers=_retrying()
        )
