"""All configuration in one place: environment variables, overridden by `huddle serve` flags."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

from media.network import PortRange, parse_public_ips
from media.turn import parse_urls


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from exc


def _ids_env(name: str) -> tuple[int, ...]:
    raw = os.environ.get(name, "")
    try:
        return tuple(int(part) for part in raw.replace(",", " ").split())
    except ValueError as exc:
        raise ValueError(f"{name} must be numeric ids separated by commas, got {raw!r}") from exc


def _port_range_env(name: str) -> PortRange | None:
    raw = os.environ.get(name, "").strip()
    return PortRange.parse(raw, name) if raw else None


def _bool_env(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def _path_env(name: str) -> Path | None:
    raw = os.environ.get(name, "").strip()
    return Path(raw) if raw else None


def tls_mode(raw: str, name: str = "HUDDLE_TLS") -> str:
    """``"self-signed"``: HTTPS with a local CA; ``""``: certificate files if given, else HTTP."""
    text = raw.strip().lower()
    if text not in ("", "self-signed"):
        raise ValueError(f"{name} must be 'self-signed' or empty, got {raw!r}")
    return text


def accounts_mode(raw: str, name: str = "HUDDLE_ACCOUNTS") -> str:
    """``"auto"``: accounts once reachable beyond loopback; ``"on"``: always."""
    text = raw.strip().lower() or "auto"
    if text not in ("auto", "on"):
        raise ValueError(
            f"{name} must be 'auto' or 'on', got {raw!r} (a server reachable from other "
            "machines always requires sign-in)"
        )
    return text


def is_loopback_host(host: str) -> bool:
    """Whether listening on ``host`` reaches this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def media_workers(raw: str, name: str = "HUDDLE_MEDIA_WORKERS") -> int:
    """``""``/``"0"``: media in the main process; ``"auto"``: one worker per core; else a count."""
    text = raw.strip().lower()
    if text in ("", "0"):
        return 0
    if text == "auto":
        return len(os.sched_getaffinity(0))
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise ValueError(f"{name} must be a number of processes or 'auto', got {raw!r}")
    return count


@dataclass
class Settings:
    """Everything `huddle serve` needs; see the README's configuration table."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".huddle")
    #: Base of every link handed out (Join buttons); defaults to http://{host}:{port}.
    public_url: str = ""
    #: SQLAlchemy async URL; defaults to a SQLite file in the data dir.
    database_url: str = ""
    #: How long a huddle stays open after the last participant left (they may come back).
    empty_grace: float = 120.0
    #: A huddle nobody joins ends after this long.
    unused_timeout: float = 3600.0
    #: Join links carry their own expiry too; they are re-issued on each card update.
    link_ttl: float = 24 * 3600.0
    #: Secret that signs join links; read from HUDDLE_SECRET or kept in the data dir.
    secret: bytes = field(default=b"", repr=False)
    log_level: str = "INFO"
    #: Names this process among several sharing a database (default ``hostname:port``).
    node: str = ""
    #: Media worker processes (0: media runs in this process); a huddle lives on one worker.
    media_workers: int = 0
    # Media through NAT and firewalls (media/network.py, media/turn.py).
    #: Addresses that reach this machine's media sockets from outside (1:1 NAT), advertised.
    public_ips: tuple[str, ...] = ()
    #: Every media socket binds in this range (a firewall opens one range); None: any port.
    udp_ports: PortRange | None = None
    #: STUN URLs for browsers and for the server itself (``HUDDLE_ICE_SERVERS``).
    ice_servers: tuple[str, ...] = ()
    #: TURN URLs for browsers (``turn:``/``turns:``), with coturn's ``static-auth-secret``.
    turn_urls: tuple[str, ...] = ()
    turn_secret: bytes = field(default=b"", repr=False)
    # HTTPS and reverse proxies (adapters/tls.py, adapters/proxy.py).
    #: PEM certificate chain and unencrypted key: HTTPS with them, re-read on SIGHUP.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: ``"self-signed"``: a local CA and a server certificate made into ``{data dir}/tls``.
    tls_mode: str = ""
    #: Honour X-Forwarded-Proto/-Host/-For: only behind a reverse proxy that sets them.
    trust_proxy: bool = False
    #: The web chat's accounts: ``"auto"`` (required once reachable beyond loopback) or ``"on"``.
    accounts: str = "auto"
    #: A bearer token that shows /metrics and /healthz's detail to other machines (a scraper).
    metrics_token: str = field(default="", repr=False)
    #: Set by :meth:`resolve`: no public URL was configured and a trusted proxy may report it.
    links_follow_proxy: bool = field(default=False, init=False)
    # Slack (adapters/slack): Socket Mode with an app token, else HTTP mode with a signing secret.
    slack_bot_token: str = field(default="", repr=False)
    slack_app_token: str = field(default="", repr=False)
    slack_signing_secret: str = field(default="", repr=False)
    slack_api_url: str = ""
    # Discord (adapters/discord).
    discord_token: str = field(default="", repr=False)
    discord_api_url: str = ""
    discord_gateway_url: str = ""
    discord_guild_ids: tuple[int, ...] = ()

    @classmethod
    def from_env(cls) -> Settings:
        """Read the HUDDLE_* environment variables (flags are applied on top by the CLI)."""
        settings = cls(
            host=os.environ.get("HUDDLE_HOST", cls.host),
            port=int(os.environ.get("HUDDLE_PORT", cls.port)),
            data_dir=Path(os.environ.get("HUDDLE_DATA_DIR", str(cls.data_dir))),
            public_url=os.environ.get("HUDDLE_PUBLIC_URL", ""),
            database_url=os.environ.get("HUDDLE_DATABASE_URL", ""),
            empty_grace=_float_env("HUDDLE_EMPTY_GRACE", cls.empty_grace),
            unused_timeout=_float_env("HUDDLE_UNUSED_TIMEOUT", cls.unused_timeout),
            link_ttl=_float_env("HUDDLE_LINK_TTL", cls.link_ttl),
            secret=os.environ.get("HUDDLE_SECRET", "").encode(),
            log_level=os.environ.get("HUDDLE_LOG_LEVEL", "INFO").upper(),
            node=os.environ.get("HUDDLE_NODE", ""),
            media_workers=media_workers(os.environ.get("HUDDLE_MEDIA_WORKERS", "")),
            tls_cert=_path_env("HUDDLE_TLS_CERT"),
            tls_key=_path_env("HUDDLE_TLS_KEY"),
            tls_mode=tls_mode(os.environ.get("HUDDLE_TLS", "")),
            trust_proxy=_bool_env("HUDDLE_TRUST_PROXY"),
            accounts=accounts_mode(os.environ.get("HUDDLE_ACCOUNTS", "")),
            metrics_token=os.environ.get("HUDDLE_METRICS_TOKEN", "").strip(),
            slack_bot_token=os.environ.get("SLACK_BOT_TOKEN", ""),
            slack_app_token=os.environ.get("SLACK_APP_TOKEN", ""),
            slack_signing_secret=os.environ.get("SLACK_SIGNING_SECRET", ""),
            slack_api_url=os.environ.get("SLACK_API_URL", ""),
            discord_token=os.environ.get("DISCORD_TOKEN", ""),
            discord_api_url=os.environ.get("DISCORD_API_URL", ""),
            discord_gateway_url=os.environ.get("DISCORD_GATEWAY_URL", ""),
            discord_guild_ids=_ids_env("DISCORD_GUILD_IDS"),
            public_ips=parse_public_ips(os.environ.get("HUDDLE_PUBLIC_IP", "")),
            udp_ports=_port_range_env("HUDDLE_UDP_PORTS"),
            ice_servers=parse_urls(
                os.environ.get("HUDDLE_ICE_SERVERS", ""), ("stun", "stuns"), "HUDDLE_ICE_SERVERS"
            ),
            turn_urls=parse_urls(
                os.environ.get("HUDDLE_TURN_URLS", ""), ("turn", "turns"), "HUDDLE_TURN_URLS"
            ),
            turn_secret=os.environ.get("HUDDLE_TURN_SECRET", "").encode(),
        )
        return settings

    def resolve(self) -> Settings:
        """Fill derived defaults: data dir, database URL, public URL, the signing secret."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{(self.data_dir / 'huddle.db').resolve()}"
        if not self.public_url:
            self.links_follow_proxy = self.trust_proxy
            scheme = "https" if self.tls_enabled else "http"
            self.public_url = f"{scheme}://{self.host}:{self.port}"
        if not self.node:
            self.node = f"{socket.gethostname()}:{self.port}"
        self.public_url = self.public_url.rstrip("/")
        if not self.secret:
            self.secret = self._stored_secret()
        return self

    @property
    def accounts_required(self) -> bool:
        """Whether the web chat needs sign-in: asked for, or reachable from other machines
        (bound beyond loopback, or behind a reverse proxy, whose clients are elsewhere)."""
        return self.accounts == "on" or self.trust_proxy or not is_loopback_host(self.host)

    @property
    def tls_enabled(self) -> bool:
        """True when `huddle serve` itself speaks HTTPS (certificate files or self-signed)."""
        return bool(self.tls_mode or self.tls_cert or self.tls_key)

    def _stored_secret(self) -> bytes:
        # Kept on disk so join links stay valid across restarts without any setup.
        path = self.data_dir / "secret"
        if path.exists():
            return path.read_bytes().strip()
        value = secrets.token_urlsafe(32).encode()
        path.write_bytes(value)
        path.chmod(0o600)
        return value
