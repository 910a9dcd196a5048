"""Huddles mirrored as Slack Calls: ``calls.add``, participants in and out, ``calls.end``.

Slack has no API for its own huddles, but a third-party call registered with ``calls.add`` (scope
``calls:write``) is drawn natively: title, live participant avatars, a Join button. The core sends a
:class:`HuddleSnapshot` whenever a card changes; this module turns the difference between the last
mirrored state and the snapshot into Calls API requests. Everyone joins through the web page, so
participants are external users keyed by the media core's participant id.

The mirror runs beside the core, not inside it: :meth:`CallMirror.submit` returns at once and one
worker per huddle applies the latest snapshot (a 429 on ``calls.participants.add`` with a long
``Retry-After`` must not hold up the card). A snapshot that fails is tried again a few times unless
a newer one replaces it, so ``calls.end`` is not lost to a passing error.

Without ``calls:write`` (seen in ``auth.test``'s ``x-oauth-scopes`` header, or as ``missing_scope``
from ``calls.add``) the mirror switches itself off with one log line and huddles show as cards only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from adapters.slack.api import SlackApi, slack_error
from adapters.slack.blocks import call_blocks, escape
from adapters.slack.posts import split_ref
from bot.types import HuddleSnapshot

log = logging.getLogger("huddle.slack.calls")

SCOPE = "calls:write"
FORGOTTEN = 4096
#: Tries of one snapshot before giving up on it (a newer snapshot starts afresh).
ATTEMPTS = 4


@dataclass
class _Call:
    """A huddle registered with Slack: its Call id and who Slack shows in it."""

    call_id: str
    started: float
    present: dict[str, str] = field(default_factory=dict)
    #: The call block has been posted under the card.
    shared: bool = False


def _users(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """Calls API external users: ``{external_id, display_name}``."""
    return [{"external_id": pid, "display_name": name[:80] or pid} for pid, name in pairs]


class CallMirror:
    """Keeps one Slack Call per open huddle in step with the core's snapshots."""

    def __init__(self, api: SlackApi, clock: Callable[[], float] = time.time) -> None:
        self.api = api
        self.clock = clock
        #: True/False once known; None means "try, and learn from the answer".
        self.enabled: bool | None = None
        self._calls: dict[str, _Call] = {}
        #: Huddles that ended, or that Slack refused to register: never registered again.
        self._done: OrderedDict[str, None] = OrderedDict()
        self._latest: dict[str, HuddleSnapshot] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    def scopes_seen(self, scopes: frozenset[str]) -> None:
        """Decide from the token's granted scopes (``auth.test``'s ``x-oauth-scopes``)."""
        if SCOPE in scopes:
            self.enabled = True
        else:
            self._disable(f"auth.test lists the token's scopes and {SCOPE} is not among them")

    def submit(self, snapshot: HuddleSnapshot) -> None:
        """Queue ``snapshot`` for its huddle's worker (only the latest one waiting is kept)."""
        if self.enabled is False:
            return
        huddle_id = snapshot.huddle_id
        self._latest[huddle_id] = snapshot
        if huddle_id not in self._workers:
            task = asyncio.get_running_loop().create_task(self._work(huddle_id))
            self._workers[huddle_id] = task

    async def drain(self, within: float) -> None:
        """Let queued snapshots go out for up to ``within`` s (shutdown), then drop the rest."""
        if self._workers:
            _, pending = await asyncio.wait(set(self._workers.values()), timeout=within)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _work(self, huddle_id: str) -> None:
        failures = 0
        try:
            while (snapshot := self._latest.pop(huddle_id, None)) is not None:
                try:
                    await self.apply(snapshot)
                    failures = 0
                except Exception as exc:
                    failures += 1
                    log.warning(
                        "call mirror failed huddle=%s attempt=%d error=%r", huddle_id, failures, exc
                    )
                    if failures < ATTEMPTS:
                        self._latest.setdefault(huddle_id, snapshot)
                        await asyncio.sleep(2.0**failures)
                    else:
                        failures = 0
        finally:
            self._workers.pop(huddle_id, None)

    async def apply(self, snapshot: HuddleSnapshot) -> None:
        """Bring the huddle's Slack Call in line with ``snapshot`` now. Raises on API failure."""
        if self.enabled is False:
            return
        if snapshot.is_open:
            await self._update(snapshot)
        else:
            await self._end(snapshot.huddle_id)

    async def _update(self, snapshot: HuddleSnapshot) -> None:
        call = self._calls.get(snapshot.huddle_id)
        if call is None:
            if snapshot.huddle_id in self._done or snapshot.join_url is None:
                return
            call = await self._register(snapshot)
            if call is None:
                return
        if not call.shared and snapshot.card_ref is not None:
            await self._share(call, snapshot)
        present = dict(snapshot.present)
        joined = [(pid, name) for pid, name in present.items() if pid not in call.present]
        left = [(pid, name) for pid, name in call.present.items() if pid not in present]
        if joined:
            await self._participants("add", call, joined)
            call.present.update(joined)
        if left:
            await self._participants("remove", call, left)
            for pid, _ in left:
                call.present.pop(pid, None)

    async def _participants(self, change: str, call: _Call, people: list[tuple[str, str]]) -> None:
        method = (
            self.api.web.calls_participants_add
            if change == "add"
            else self.api.web.calls_participants_remove
        )
        try:
            await method(id=call.call_id, users=_users(people))
        except Exception as exc:
            error = slack_error(exc)
            if error is None or error == "ratelimited":
                raise
            # Refused for good (``bad_users``: already in, say): retrying would only repeat it.
            log.warning(
                "calls.participants.%s refused call=%s error=%s", change, call.call_id, error
            )

    async def _register(self, snapshot: HuddleSnapshot) -> _Call | None:
        assert snapshot.join_url is not None
        started = self.clock()
        try:
            # Not retried on 5xx by the SDK: a repeated calls.add would register a second Call.
            response = await self.api.web_once.calls_add(
                external_unique_id=snapshot.huddle_id,
                join_url=snapshot.join_url,
                title=snapshot.title[:255],
                created_by=snapshot.host.id,
                date_start=int(started),
                external_display_id=snapshot.huddle_id,
                users=_users(snapshot.present),
            )
        except Exception as exc:
            error = slack_error(exc)
            if error == "missing_scope":
                self._disable(f"calls.add answered missing_scope (needs {SCOPE})")
                return None
            if error is not None and error != "ratelimited":
                # Refused for good (a bad argument, a duplicate id after a restart): card only.
                log.warning("calls.add refused huddle=%s error=%s", snapshot.huddle_id, error)
                self._forget(snapshot.huddle_id)
                return None
            raise
        self.enabled = True
        call_id = str(response["call"]["id"])
        call = _Call(call_id=call_id, started=started, present=dict(snapshot.present))
        self._calls[snapshot.huddle_id] = call
        log.info("call registered huddle=%s call=%s", snapshot.huddle_id, call_id)
        return call

    async def _share(self, call: _Call, snapshot: HuddleSnapshot) -> None:
        # Slack draws a registered Call only where a message carries its call block; under the
        # card, in its thread, it adds Slack's own Join and avatars without a second card.
        assert snapshot.card_ref is not None
        channel, card_ts = split_ref(snapshot.card_ref, snapshot.channel.channel_id)
        try:
            await self.api.web_once.chat_postMessage(
                channel=channel,
                thread_ts=card_ts,
                blocks=call_blocks(call.call_id),
                text=f"Join {escape(snapshot.title)}",
            )
        except Exception as exc:
            error = slack_error(exc)
            if error is None or error == "ratelimited":
                # Unclear or later: tried again with the next snapshot. A duplicate call block
                # in the thread is harmless; a missing one hides the Call.
                raise
            log.warning("call block refused call=%s error=%s", call.call_id, error)
        call.shared = True

    async def _end(self, huddle_id: str) -> None:
        call = self._calls.get(huddle_id)
        if call is None:
            self._forget(huddle_id)
            return
        duration = max(0, int(self.clock() - call.started))
        try:
            await self.api.web.calls_end(id=call.call_id, duration=duration)
        except Exception as exc:
            if slack_error(exc) in (None, "ratelimited"):
                raise
            log.warning("calls.end refused huddle=%s error=%s", huddle_id, slack_error(exc))
        del self._calls[huddle_id]
        self._forget(huddle_id)
        log.info("call ended huddle=%s call=%s duration=%ds", huddle_id, call.call_id, duration)

    def _forget(self, huddle_id: str) -> None:
        self._done[huddle_id] = None
        if len(self._done) > FORGOTTEN:
            self._done.popitem(last=False)

    def _disable(self, why: str) -> None:
        if self.enabled is False:
            return
        self.enabled = False
        self._calls.clear()
        log.warning(
            "Slack Calls API off: %s; huddles show as cards only. Add the %s bot scope and "
            "reinstall the app to see them as Slack Calls.",
            why,
            SCOPE,
        )
