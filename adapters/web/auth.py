"""Who is using the web chat: sign-in, sessions in cookies, API tokens, CSRF and rate limits.

Two modes, chosen at start (``Settings.accounts_required``):

* **open**, when the server listens on loopback only (the embedded default): whoever can reach
  it is on this machine, and says their own name (the ``user`` field), as before.
* **accounts**, when it is reachable from elsewhere (bound beyond loopback, or behind a trusted
  reverse proxy): every chat request belongs to an account (:mod:`bot.accounts`), by a session
  cookie (the page) or ``Authorization: Bearer`` (scripts); the name in a post is the account's,
  and whatever ``user`` the client sends is ignored.

API:
  GET  /api/auth/me                              -> {"name", "accounts"} or 401
  POST /api/auth/signin  {"name", "password"}    -> {"name"} + session cookie; 401; 429
  POST /api/auth/signout                         -> {} (the session ends)
  POST /api/auth/invite  {"code", "name", "password"} -> {"name"} + session cookie
  GET  /signin, /invite/{code}                   -> the sign-in and invite pages
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from bot.accounts import AccountError, Accounts
from media.limits import RateLimit, is_loopback, retry_text

log = logging.getLogger("huddle.web.auth")

SESSION_COOKIE = "huddle_session"
#: Sign-in attempts per address: ten at once, then one every 30 seconds (each is an Argon2 hash,
#: and guessing is what they are for).
SIGN_IN_BURST, SIGN_IN_RATE = 10, 1 / 30
#: Chat API requests per address: a page's load plus a burst of typing, then five a second.
API_BURST, API_RATE = 60, 5.0
MAX_BODY = 16 * 1024
STATIC_PAGE = "account.html"


def _error(
    status: type[web.HTTPException],
    message: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.HTTPException:
    """An HTTP error with a JSON body ``{"error": message, ...}`` the page shows as it is."""
    return status(
        text=json.dumps({"error": message, **extra}),
        content_type="application/json",
        headers=headers,
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class WebAuth:
    """Answers "who sent this request?" for the web chat, in either mode."""

    def __init__(
        self,
        accounts: Accounts,
        *,
        required: bool,
        public_url: str,
        static_dir: Any,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.accounts = accounts
        self.required = required
        self.public_origin = _origin(public_url)
        self.static_dir = static_dir
        self.sign_in_limit = RateLimit(SIGN_IN_BURST, SIGN_IN_RATE, clock=monotonic)
        self.api_limit = RateLimit(API_BURST, API_RATE, clock=monotonic)

    def add_routes(self, app: web.Application) -> None:
        """Mount the sign-in pages and the auth API."""
        app.router.add_get("/signin", self._account_page)
        app.router.add_get("/invite/{code}", self._account_page)
        app.router.add_get("/api/auth/me", self._me)
        app.router.add_post("/api/auth/signin", self._sign_in)
        app.router.add_post("/api/auth/signout", self._sign_out)
        app.router.add_post("/api/auth/invite", self._accept_invite)

    # What the chat handlers ask.

    async def account(self, request: web.Request) -> str | None:
        """The signed-in account of this request (bearer token or session cookie), or None."""
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            return await self.accounts.holder(header[7:].strip(), "token")
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return await self.accounts.holder(cookie, "session")
        return None

    async def who(self, request: web.Request, claimed: object, *, writes: bool) -> str | None:
        """The name this request acts as.

        Open mode: ``claimed`` (the client's ``user`` field or query), checked by the caller.
        Accounts mode: the signed-in account; 401 without one, 403 for a cookie sent from
        another site's page (CSRF), 429 past the address's rate. ``claimed`` is ignored.
        """
        self._limit(request, self.api_limit, "Too many requests")
        if not self.required:
            return claimed if isinstance(claimed, str) else None
        name = await self.account(request)
        if name is None:
            raise _error(web.HTTPUnauthorized, "Sign in first.", signin="/signin")
        if writes and not request.headers.get("Authorization"):
            self.check_origin(request)
        return name

    def check_origin(self, request: web.Request) -> None:
        """Refuse a state-changing request a browser sent from another site's page.

        SameSite=Lax keeps the session cookie off most cross-site requests already; this is the
        second lock (older browsers, a sibling subdomain that counts as the same site). A
        browser always sends ``Origin`` with a POST; a script without one holds its own cookie.
        """
        origin = request.headers.get("Origin")
        if origin is None:
            site = request.headers.get("Sec-Fetch-Site")
            if site in (None, "same-origin", "none"):
                return
        elif origin.lower() in (self.public_origin, f"{request.scheme}://{request.host}".lower()):
            return
        log.warning(
            "cross-origin request refused path=%s origin=%r remote=%s",
            request.path,
            (origin or "")[:100],
            request.remote,
        )
        raise _error(web.HTTPForbidden, "This request came from another site's page; refused.")

    def _limit(self, request: web.Request, limit: RateLimit, what: str) -> None:
        retry = limit.take(request.remote or "?")
        if retry:
            log.warning("rate limited path=%s remote=%s", request.path, request.remote)
            raise _error(
                web.HTTPTooManyRequests,
                f"{what} from your address; try again {retry_text(retry)}.",
                headers={"Retry-After": str(retry)},
            )

    async def page_redirect(self, request: web.Request) -> None:
        """Send a browser without a session to the sign-in page (accounts mode only)."""
        if self.required and await self.account(request) is None:
            raise web.HTTPFound(f"/signin?next={quote(request.path_qs, safe='/')}")

    # Handlers.

    async def _account_page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(self.static_dir / STATIC_PAGE)

    async def _me(self, request: web.Request) -> web.Response:
        if not self.required:
            return web.json_response({"name": None, "accounts": False})
        name = await self.account(request)
        if name is None:
            raise _error(web.HTTPUnauthorized, "Sign in first.", signin="/signin")
        return web.json_response({"name": name, "accounts": True})

    async def _sign_in(self, request: web.Request) -> web.Response:
        self.check_origin(request)
        # Looked at before the hash is computed, spent only on a wrong answer: a person who
        # types the right password is never held back by earlier typos from their address.
        retry = self.sign_in_limit.wait(request.remote or "?")
        if retry:
            log.warning("sign-in rate limited remote=%s", request.remote)
            raise _error(
                web.HTTPTooManyRequests,
                f"Too many sign-in attempts from your address; try again {retry_text(retry)}.",
                headers={"Retry-After": str(retry)},
            )
        body = await _read_json(request)
        name, password = body.get("name"), body.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            raise _error(web.HTTPBadRequest, '"name" and "password" are required.')
        secret = await self.accounts.sign_in(name.strip(), password)
        if secret is None:
            self.sign_in_limit.spend(request.remote or "?")
            log.info("sign-in failed name=%r remote=%s", name[:64], request.remote)
            raise _error(web.HTTPUnauthorized, "Wrong name or password.")
        log.info("signed in name=%s remote=%s", name.strip(), request.remote)
        return self._with_session(request, {"name": name.strip()}, secret)

    async def _sign_out(self, request: web.Request) -> web.Response:
        self.check_origin(request)
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            await self.accounts.revoke(cookie)
        response = web.json_response({})
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    async def _accept_invite(self, request: web.Request) -> web.Response:
        self.check_origin(request)
        self._limit(request, self.sign_in_limit, "Too many attempts")
        body = await _read_json(request)
        code, name, password = body.get("code"), body.get("name"), body.get("password")
        if not all(isinstance(v, str) for v in (code, name, password)):
            raise _error(web.HTTPBadRequest, '"code", "name" and "password" are required.')
        assert isinstance(code, str) and isinstance(name, str) and isinstance(password, str)
        try:
            secret = await self.accounts.accept_invite(code, name.strip(), password)
        except AccountError as exc:
            raise _error(web.HTTPBadRequest, str(exc)) from None
        log.info("account made from an invite name=%s remote=%s", name.strip(), request.remote)
        return self._with_session(request, {"name": name.strip()}, secret)

    def _with_session(
        self, request: web.Request, body: dict[str, Any], secret: str
    ) -> web.Response:
        response = web.json_response(body)
        response.set_cookie(
            SESSION_COOKIE,
            secret,
            max_age=30 * 24 * 3600,
            path="/",
            httponly=True,
            samesite="Lax",
            # Over HTTPS (directly or through a trusted proxy) the cookie never goes out in clear.
            secure=request.secure or None,
        )
        return response


async def _read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise _error(web.HTTPBadRequest, f"The body is larger than {MAX_BODY} bytes.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _error(web.HTTPBadRequest, "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _error(web.HTTPBadRequest, "The body must be a JSON object.")
    return body


def open_mode_allowed(host: str) -> bool:
    """Whether a server bound to ``host`` may run the web chat without accounts."""
    return host == "localhost" or is_loopback(host)
