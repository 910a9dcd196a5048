"""All configuration in one place: environment variables, overridden by `huddle serve` flags."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path


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
            slack_bot_token=os.environ.get("SLACK_BOT_TOKEN", ""),
            slack_app_token=os.environ.get("SLACK_APP_TOKEN", ""),
            slack_signing_secret=os.environ.get("SLACK_SIGNING_SECRET", ""),
            slack_api_url=os.environ.get("SLACK_API_URL", ""),
            discord_token=os.environ.get("DISCORD_TOKEN", ""),
            discord_api_url=os.environ.get("DISCORD_API_URL", ""),
            discord_gateway_url=os.environ.get("DISCORD_GATEWAY_URL", ""),
            discord_guild_ids=_ids_env("DISCORD_GUILD_IDS"),
        )
        return settings

    def resolve(self) -> Settings:
        """Fill derived defaults: data dir, database URL, public URL, the signing secret."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{(self.data_dir / 'huddle.db').resolve()}"
        if not self.public_url:
            self.public_url = f"http://{self.host}:{self.port}"
        if not self.node:
            self.node = f"{socket.gethostname()}:{self.port}"
        self.public_url = self.public_url.rstrip("/")
        if not self.secret:
            self.secret = self._stored_secret()
        return self

    def _stored_secret(self) -> bytes:
        # Kept on disk so join links stay valid across restarts without any setup.
        path = self.data_dir / "secret"
        if path.exists():
            return path.read_bytes().strip()
        value = secrets.token_urlsafe(32).encode()
        path.write_bytes(value)
        path.chmod(0o600)
        return value
