"""Process settings, read from the environment (and CLI flags that override it).

Secrets that are not given are generated once into the data directory with 0600
permissions, so a restart keeps sessions and encrypted codes readable.
"""

from __future__ import annotations

import base64
import os
import secrets
from datetime import timedelta
from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("quanyi", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUANYI_", extra="ignore")

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    data_dir: Path = Field(default_factory=default_data_dir)
    session_secret: SecretStr | None = None
    master_key: SecretStr | None = None
    payment_secret: SecretStr | None = None
    session_ttl_seconds: int = Field(default=12 * 3600, gt=0)
    migrate_on_start: bool = True
    log_level: str = "INFO"
    db_pool_size: int = Field(default=20, ge=1)
    redis_connections: int = Field(default=64, ge=2)
    max_query_depth: int = Field(default=12, ge=2)
    max_aliases: int = Field(default=30, ge=1)
    max_tokens: int = Field(default=5000, ge=100)
    max_page_size: int = Field(default=100, ge=1)
    login_attempts: int = Field(default=10, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    reservation_ttl_seconds: float = Field(default=900, gt=0)
    reservation_sweep_seconds: float = Field(default=1.0, gt=0)
    order_payment_ttl_seconds: float = Field(default=900, gt=0)
    pool_window_size: int = Field(default=1024, ge=1)
    pool_db_connections: int = Field(default=4, ge=1)
    pool_max_actors: int = Field(default=256, ge=1)
    pool_idle_seconds: float = Field(default=60, gt=0)
    stock_publish_interval: float = Field(default=0.1, ge=0)
    # Bounds how stale a cached read can be when an invalidation message is lost.
    read_cache_seconds: float = Field(default=10, gt=0)
    # Outbound HTTP (suppliers, webhooks, SMS) to loopback or private addresses is refused
    # unless this allows it: for tests and local setups (`--demo` sets it).
    allow_private_targets: bool = False
    supplier_timeout_seconds: float = Field(default=5, gt=0)
    supplier_attempts: int = Field(default=3, ge=1, le=10)
    supplier_retry_base_seconds: float = Field(default=0.2, ge=0)
    supplier_breaker_failures: int = Field(default=5, ge=1)
    supplier_breaker_seconds: float = Field(default=10, gt=0)
    # How often suppliers' catalogs are synced; 0 syncs only when asked.
    supplier_sync_seconds: float = Field(default=0, ge=0)
    # A supplier order left unfinished this long (its process died) is taken up again.
    supplier_recovery_seconds: float = Field(default=30, gt=0)
    outbox_poll_seconds: float = Field(default=0.5, gt=0)
    outbox_max_attempts: int = Field(default=8, ge=1)
    outbox_retry_base_seconds: float = Field(default=2, ge=0)
    outbox_retry_cap_seconds: float = Field(default=600, gt=0)
    public_url: str | None = None
    link_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    link_max_views: int = Field(default=5, ge=1)
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_tls: bool = False
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = "codes@quanyi.invalid"
    sms_url: str | None = None
    sms_api_key: SecretStr | None = None
    sms_sender: str | None = None
    sms_template: str = "【Quanyi】{product}: {codes} (order {order})"
    # How often the audit chainer runs; 0: this process runs none (another one chains).
    audit_chain_seconds: float = Field(default=0.5, ge=0)
    # An event this old with no chain entry makes auditVerify fail.
    audit_unchained_grace_seconds: float = Field(default=60, gt=0)
    # The guessing defence: wrong codes or passwords per verifier and per device.
    redemption_guess_limit: int = Field(default=10, ge=1)
    redemption_guess_seconds: float = Field(default=300, gt=0)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    # How long an idle HTTP connection is kept open (see server.http_server_config).
    keep_alive_seconds: int = Field(default=75, ge=1)
    # The CPU `quanyi serve` runs its Python threads on (see server._pin); None: anywhere.
    cpu: int | None = Field(default=None, ge=0)

    @property
    def session_ttl(self) -> timedelta:
        return timedelta(seconds=self.session_ttl_seconds)

    def secret_path(self, name: str) -> Path:
        return self.data_dir / "secrets" / name

    def resolved_session_secret(self) -> bytes:
        if self.session_secret is not None:
            return self.session_secret.get_secret_value().encode()
        return _load_or_create_secret(self.secret_path("session.key"))

    def resolved_payment_secret(self) -> bytes:
        """The key the payment gateway signs its callbacks with (HMAC-SHA256)."""
        if self.payment_secret is not None:
            return self.payment_secret.get_secret_value().encode()
        return _load_or_create_secret(self.secret_path("payment.key"))

    def resolved_master_key(self) -> bytes:
        if self.master_key is not None:
            return base64.b64decode(self.master_key.get_secret_value())
        return base64.b64decode(_load_or_create_secret(self.secret_path("master.key")))


def _load_or_create_secret(path: Path) -> bytes:
    """Read a generated secret, creating it atomically (O_EXCL) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    value = base64.b64encode(secrets.token_bytes(32))
    with os.fdopen(fd, "wb") as f:
        f.write(value)
    return value
