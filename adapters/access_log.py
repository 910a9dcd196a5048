"""The HTTP access log, with the secrets a URL can carry taken out.

Join links carry their token in ``?t=``, meeting and calendar links their signature in ``?s=``;
whoever reads the log (an operator, a log shipper) must not be able to join or subscribe with
what it finds there. The request line and the Referer header (which may hold a join link the
browser came from) are logged with those values replaced by ``REDACTED``.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web_log
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

#: Query parameters that hold a credential (media/tokens.py's ``t``, bot/links.py's ``s``).
SECRET_PARAMS = frozenset({"t", "s", "token"})
REDACTED = "REDACTED"


def redact(url: str) -> str:
    """``url`` (absolute, or a path with its query) with every secret parameter's value hidden."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(name in SECRET_PARAMS for name, _ in pairs):
        return url
    query = urlencode([(n, REDACTED if n in SECRET_PARAMS else v) for n, v in pairs])
    return urlunsplit(parts._replace(query=query))


class RedactingAccessLogger(web_log.AccessLogger):
    """aiohttp's access logger, logging each request as if its secrets were not in it."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Log ``request`` with its URL and Referer redacted (the request itself is untouched)."""
        if request is not None:
            path = redact(request.rel_url.raw_path_qs)
            referer = request.headers.get("Referer")
            changes: dict[str, object] = {}
            if path != request.rel_url.raw_path_qs:
                changes["rel_url"] = path
            if referer is not None and redact(referer) != referer:
                headers = request.headers.copy()
                headers["Referer"] = redact(referer)
                changes["headers"] = headers
            if changes:
                request = request.clone(**changes)  # type: ignore[arg-type]
        super().log(request, response, time)


def access_logger(trust_proxy: bool) -> tuple[logging.Logger, str]:
    """The logger and format `huddle serve` logs requests with."""
    access = web_log.AccessLogger.LOG_FORMAT
    if trust_proxy:
        # The connection comes from the proxy; who it came for is what an operator looks for.
        access = "%{X-Forwarded-For}i via " + access
    return logging.getLogger("huddle.http"), access
