"""`GET /healthz` (JSON) and `GET /metrics` (Prometheus text) for the whole server.

Their detail (how many calls, who is connected, which platforms) is for this machine and for a
scraper holding ``HUDDLE_METRICS_TOKEN``; anyone else gets only ``{"status": "ok"}`` (enough for a
load balancer's health check) and a 403 on /metrics.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import bot
from bot.store import Store
from media.limits import is_loopback


class MediaCounts(Protocol):
    """The numbers the media core reports (``media.server.MediaStats``)."""

    @property
    def huddles(self) -> int: ...
    @property
    def participants(self) -> int: ...
    @property
    def packets_forwarded(self) -> int: ...
    @property
    def bytes_forwarded(self) -> int: ...
    @property
    def signaling_errors(self) -> int: ...
    @property
    def layer_switches(self) -> int: ...
    @property
    def layers_paused(self) -> int: ...
    @property
    def bytes_saved(self) -> int: ...


class _Stats(Protocol):
    def stats(self) -> MediaCounts: ...


class _Leader(Protocol):
    @property
    def is_leader(self) -> bool: ...


class MediaCollector(Collector):
    """Reads the media core's counters at scrape time (nothing is counted twice)."""

    def __init__(self, media: _Stats, errors: dict[str, int]) -> None:
        self.media = media
        self.errors = errors

    def collect(self) -> Iterator[Metric]:
        stats = self.media.stats()
        yield GaugeMetricFamily(
            "huddle_huddles_active", "Huddles with someone in them", stats.huddles
        )
        yield GaugeMetricFamily(
            "huddle_participants", "Participants connected to the media server", stats.participants
        )
        yield CounterMetricFamily(
            "huddle_forwarded_packets", "RTP packets forwarded by the SFU", stats.packets_forwarded
        )
        yield CounterMetricFamily(
            "huddle_forwarded_bytes", "RTP bytes forwarded by the SFU", stats.bytes_forwarded
        )
        yield CounterMetricFamily(
            "huddle_layer_switches",
            "Viewers moved from one simulcast layer to another",
            stats.layer_switches,
        )
        yield GaugeMetricFamily(
            "huddle_layers_paused",
            "Simulcast subscriptions paused now (a tile nobody sees)",
            stats.layers_paused,
        )
        yield CounterMetricFamily(
            "huddle_simulcast_saved_bytes",
            "Bytes of full-size simulcast layers not sent (viewers got a smaller layer or none)",
            stats.bytes_saved,
        )
        errors = CounterMetricFamily(
            "huddle_errors", "Errors answered to clients, by where", labels=["source"]
        )
        errors.add_metric(["signaling"], stats.signaling_errors)
        for source, count in sorted(self.errors.items()):
            errors.add_metric([source], count)
        yield errors


class Health:
    """Serves /healthz and /metrics."""

    def __init__(
        self,
        store: Store,
        media: _Stats,
        platforms: list[str],
        scheduler: _Leader | None = None,
        token: str = "",
    ) -> None:
        self.token = token
        self.scheduler = scheduler
        self.store = store
        self.media = media
        self.platforms = platforms
        #: Errors counted by the HTTP layer (4xx answers, 5xx), by source.
        self.errors: dict[str, int] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MediaCollector(media, self.errors))

    def add_routes(self, app: web.Application) -> None:
        """Mount both endpoints."""
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)

    def count_error(self, source: str) -> None:
        """Count one error answered to a client (shown in /metrics)."""
        self.errors[source] = self.errors.get(source, 0) + 1

    def _trusted(self, request: web.Request) -> bool:
        """This machine itself, or a bearer of the metrics token."""
        if is_loopback(request.remote):
            return True
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        return bool(self.token) and hmac.compare_digest(given.encode(), self.token.encode())

    async def _healthz(self, request: web.Request) -> web.Response:
        if not self._trusted(request):
            return web.json_response({"status": "ok"})
        stats = self.media.stats()
        open_huddles = await self.store.open_huddles()
        return web.json_response(
            {
                "status": "ok",
                "version": bot.__version__,
                "database": self.store.dialect,
                "platforms": self.platforms,
                "huddles_open": len(open_huddles),
                "huddles_active": stats.huddles,
                "participants": stats.participants,
                "scheduler": (
                    "leader" if self.scheduler and self.scheduler.is_leader else "standby"
                ),
            }
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        if not self._trusted(request):
            raise web.HTTPForbidden(
                text=json.dumps(
                    {"error": "Metrics are for this machine, or with HUDDLE_METRICS_TOKEN."}
                ),
                content_type="application/json",
            )
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})
