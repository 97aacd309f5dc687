"""Runtime settings, read once from the environment (prefix ``QUANTDESK_``).

The embedded default needs nothing set: SQLite under ``./var``, an in-process event bus and
local files. A production start (any non-SQLite database) must be given its secrets.
"""

from __future__ import annotations

import base64
import os
import secrets
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from quantdesk.core.fills import FillModel


class ConfigError(RuntimeError):
    """The configuration cannot run safely; the message says what to set."""


class FeedKind(StrEnum):
    RANDOM = "random"
    REPLAY = "replay"
    NONE = "none"


class PaperSession(StrEnum):
    CALENDAR = "calendar"  # orders only while the exchange's session is open
    ALWAYS = "always"  # demo and tests: the (random or replayed) market never closes


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"  # upgrade a plain connection (port 587); required, not opportunistic
    TLS = "tls"  # implicit TLS (port 465)
    NONE = "none"  # a trusted local relay only: credentials would travel in clear


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUANTDESK_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Local files: SQLite, bars, secrets.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default sqlite+aiosqlite:///<data_dir>/quantdesk.db",
    )
    strategy_dir: Path | None = Field(
        default=None, description="User strategy files; default <data_dir>/strategies."
    )
    redis_url: str | None = Field(default=None, description="Redis for bus, cache, throttles.")
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking server (http://host:5000); default a local store under "
        "<data_dir>/mlflow.",
    )
    redis_prefix: str = Field(default="qd:", description="Prefix of every Redis key and channel.")
    jwt_secret: SecretStr | None = None
    jwt_algorithm: str = "HS256"
    jwt_issuer: str = "quantdesk"
    access_token_ttl_seconds: int = Field(default=15 * 60, ge=30, le=24 * 3600)
    refresh_token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=300, le=90 * 24 * 3600)
    csrf_trusted_origins: str | None = Field(
        default=None,
        description="Origins (comma-separated, e.g. http://localhost:5173) accepted by the "
        "cookie refresh's Origin check besides the request's own host.",
    )
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    public_url: str | None = Field(
        default=None,
        description="The URL users open (e.g. https://desk.example.com behind a TLS proxy); "
        "an https URL turns on Strict-Transport-Security.",
    )

    login_max_failures_per_user: int = Field(default=5, ge=1)
    login_max_failures_per_ip: int = Field(default=20, ge=1)
    login_failure_window_seconds: int = Field(default=15 * 60, ge=1)

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    log_level: str = "INFO"
    log_json: bool = True
    auto_migrate: bool = Field(default=True, description="Run migrations on `serve` start.")
    feed: FeedKind = Field(default=FeedKind.RANDOM, description="Live quotes: random|replay|none.")
    feed_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    feed_seed: int = 0
    replay_speed: float = Field(default=60.0, ge=0, description="Replay speed; 0 = flat out.")
    replay_sessions: int = Field(default=1, ge=1, le=250, description="Sessions to replay.")
    replay_spread_ticks: int = Field(
        default=1, ge=0, le=100, description="Replay quotes' half spread, in ticks."
    )
    ws_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)
    ui_dir: Path | None = Field(default=None, description="Built UI; default frontend/dist.")

    paper_engine: bool = Field(default=True, description="Run the paper broker in this process.")
    paper_session: PaperSession = Field(
        default=PaperSession.ALWAYS, description="Market hours for orders: calendar|always."
    )
    paper_seed: int = Field(default=0, description="Seed of the paper broker's random slippage.")
    paper_slippage_ticks: int = Field(default=0, ge=0, le=100)
    paper_random_slippage_ticks: int = Field(default=0, ge=0, le=100)
    paper_max_volume_share: Decimal | None = Field(
        default=None, gt=0, le=1, description="Cap a fill at this share of traded volume."
    )
    paper_latency_ms: int = Field(default=0, ge=0, le=60_000)
    paper_sweep_seconds: float = Field(
        default=5.0, gt=0, le=300, description="How often the engine checks session deadlines."
    )
    mis_leverage: Decimal = Field(
        default=Decimal(5), ge=1, le=50, description="Intraday (MIS) margin = value / leverage."
    )
    mis_square_off_minutes: int = Field(
        default=10, ge=0, le=120, description="Close MIS positions this long before the close."
    )
    risk_monitor_seconds: float = Field(
        default=5.0, gt=0, le=300, description="How often loss and drawdown limits are checked."
    )
    backtest_workers: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Backtest jobs run at once by this process, each in a worker process "
        "(0: this process runs none; API-only processes).",
    )
    backtest_timeout_seconds: float = Field(
        default=3600.0, gt=0, le=7 * 86_400, description="A backtest job running longer fails."
    )
    ml_workers: int = Field(
        default=1,
        ge=0,
        le=64,
        description="ML training jobs run at once by this process, each in a worker process "
        "(0: this process runs none; API-only processes).",
    )
    ml_timeout_seconds: float = Field(
        default=6 * 3600.0, gt=0, le=7 * 86_400, description="An ML job running longer fails."
    )

    # Alerts (docs/alerts.md): a channel is enabled only when it is configured.
    alert_telegram_bot_token: SecretStr | None = Field(default=None, description="Bot API token.")
    alert_telegram_chat_id: str | None = Field(default=None, description="Chat to message.")
    alert_telegram_api_url: str = Field(
        default="https://api.telegram.org", description="Bot API base URL."
    )
    alert_smtp_host: str | None = Field(default=None, description="SMTP server for alerts.")
    alert_smtp_port: int = Field(default=587, ge=1, le=65535)
    alert_smtp_username: str | None = None
    alert_smtp_password: SecretStr | None = None
    alert_smtp_from: str = Field(default="quantdesk@localhost", description="Alert sender.")
    alert_smtp_to: str | None = Field(default=None, description="Recipients, comma-separated.")
    alert_smtp_security: SmtpSecurity = Field(default=SmtpSecurity.STARTTLS)
    alert_dedup_seconds: float = Field(default=300.0, ge=0, le=86_400)
    alert_rate_per_minute: float = Field(default=20.0, gt=0, le=6000)
    alert_rate_burst: int = Field(default=10, ge=1, le=1000)
    alert_queue_size: int = Field(default=100, ge=1, le=100_000)
    alert_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    alert_inbox_retention_days: int = Field(
        default=90,
        ge=0,
        le=36_500,
        description="Stored alerts (GET /api/v1/alerts) older than this are deleted; 0 keeps all.",
    )

    # Audit retention (README "Audit trail"): `quantdesk audit purge` exports, verifies, deletes.
    audit_retention_days: int = Field(
        default=0,
        ge=0,
        le=36_500,
        description="Keep audit rows this many UTC days; older ones go to a verified export "
        "and are then deleted by `quantdesk audit purge`. 0: keep forever.",
    )

    # Live brokers (README "Broker accounts"): secrets, the paper-only switch, base URLs.
    secrets_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s) encrypting broker secrets at rest, comma-separated: the first "
        "encrypts, every one decrypts (key rotation).",
    )
    vault_addr: str | None = Field(
        default=None, description="HashiCorp Vault address; set: broker secrets go to Vault KV v2."
    )
    vault_token: SecretStr | None = Field(default=None, description="Vault token.")
    vault_mount: str = Field(
        default="secret", min_length=1, max_length=128, description="Vault KV v2 mount path."
    )
    vault_path: str = Field(
        default="quantdesk",
        min_length=1,
        max_length=256,
        description="Path prefix of the platform's secrets under the Vault mount.",
    )
    vault_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    paper_only: bool = Field(
        default=True,
        description="Platform-wide: no order goes to a live broker, whatever the accounts say.",
    )
    kite_api_root: str = Field(default="https://api.kite.trade", description="Kite Connect API.")
    kite_login_url: str = Field(
        default="https://kite.zerodha.com/connect/login", description="Kite Connect login page."
    )
    upstox_api_root: str = Field(default="https://api.upstox.com/v2", description="Upstox API.")
    ib_host: str = Field(default="127.0.0.1", description="TWS / IB Gateway host.")
    ib_port: int = Field(default=7497, ge=1, le=65535, description="TWS / IB Gateway API port.")

    demo_admin_password: SecretStr | None = None
    demo_trader_password: SecretStr | None = None

    @field_validator("log_level")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @field_validator("secrets_key")
    @classmethod
    def _fernet_keys(cls, v: SecretStr | None) -> SecretStr | None:
        # A malformed key must stop the start, not the first secret stored hours later.
        if v is None:
            return v
        keys = [k.strip() for k in v.get_secret_value().split(",")]
        for key in keys:
            try:
                raw = base64.urlsafe_b64decode(key.encode("ascii"))
            except (ValueError, UnicodeEncodeError):
                raw = b""
            if len(raw) != 32:
                raise ValueError(
                    "QUANTDESK_SECRETS_KEY must be Fernet keys (32 url-safe base64-encoded "
                    "bytes), comma-separated; make one with `python -c 'from "
                    "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
                )
        return SecretStr(",".join(keys))

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        parts = urlsplit(v.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "QUANTDESK_PUBLIC_URL must be an http(s) URL such as https://desk.example.com"
            )
        return v.strip().rstrip("/")

    @property
    def is_https(self) -> bool:
        """Users reach the app over https (a TLS proxy in front): browsers get HSTS."""
        return self.public_url is not None and self.public_url.lower().startswith("https://")

    @property
    def trusted_origins(self) -> frozenset[str]:
        """``csrf_trusted_origins`` as normalised ``scheme://host[:port]`` strings."""
        items = (self.csrf_trusted_origins or "").split(",")
        return frozenset(o.strip().rstrip("/").lower() for o in items if o.strip())

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'quantdesk.db').as_posix()}"

    def paper_fill_model(self) -> FillModel:
        """The paper broker's fill model (the backtester's default too)."""
        from quantdesk.core.fills import FillModel

        return FillModel(
            slippage_ticks=self.paper_slippage_ticks,
            random_slippage_ticks=self.paper_random_slippage_ticks,
            max_volume_share=self.paper_max_volume_share,
            latency=timedelta(milliseconds=self.paper_latency_ms),
        )

    @property
    def resolved_strategy_dir(self) -> Path:
        return self.strategy_dir if self.strategy_dir is not None else self.data_dir / "strategies"

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        """The MLflow tracking (and registry) URI: the setting, else SQLite under the data dir."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        db = (self.data_dir / "mlflow" / "mlflow.db").resolve()
        return f"sqlite:///{db.as_posix()}"

    @property
    def mlflow_artifact_dir(self) -> Path:
        """Where the embedded MLflow store keeps run artifacts (models, plots)."""
        return self.data_dir / "mlflow" / "artifacts"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @cached_property
    def jwt_key(self) -> str:
        """The signing key: from the environment, or (embedded only) a file made once."""
        if self.jwt_secret is not None:
            value = self.jwt_secret.get_secret_value()
            if len(value) < 32:
                raise ConfigError("QUANTDESK_JWT_SECRET must be at least 32 characters long.")
            return value
        if not self.is_sqlite:
            raise ConfigError(
                "QUANTDESK_JWT_SECRET is not set. A production database needs an explicit "
                "signing secret of 32+ characters, e.g. from "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        return _embedded_secret(self.data_dir / "jwt_secret")


def _embedded_secret(path: Path) -> str:
    from quantdesk.datadir import ensure_private_dir

    if path.exists():
        return path.read_text().strip()
    ensure_private_dir(path.parent)
    value = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting at once must agree on one secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def get_settings() -> Settings:
    return Settings()
