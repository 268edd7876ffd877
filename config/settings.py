"""Environment settings (DESIGN.md "Environment"), validated at start-up.

Every variable is optional: the defaults give the embedded mode (SQLite under ``./var/``,
in-process delivery, sandbox providers). Secrets are ``SecretStr`` so they never print.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import phonenumbers
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """A configuration problem that must stop start-up; the message names the setting and the fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    database_url: str | None = None
    redis_url: str | None = None
    public_url: str | None = None
    config: Path | None = None
    data_dir: Path = Path("var")
    log_level: str = "INFO"

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_api_base: str = "https://api.twilio.com"
    sms_number: str | None = None
    country: str = "MA"

    telegram_bot_token: SecretStr | None = None
    telegram_secret_token: SecretStr | None = None
    telegram_api_base: str = "https://api.telegram.org"

    imap_host: str | None = None
    imap_port: int | None = None
    imap_user: str | None = None
    imap_password: SecretStr | None = None
    imap_tls: bool = True
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: bool = True
    email_address: str | None = None

    # Not in DESIGN.md's table; documented in the README.
    delivery_concurrency: int = Field(default=64, ge=1, le=512)
    queue_name: str = "gateway-outbox"
    delivery_lease_seconds: float = Field(default=60.0, ge=1.0, le=3600.0)
    # Inbound messages a server process holds waiting for the database before it answers 503
    # (with Retry-After) instead: an overload then costs neither unbounded memory nor timeouts.
    max_pending_ingests: int = Field(default=1000, ge=1, le=1_000_000)
    # ... or once the oldest of them has waited this long (providers time out after about 15 s).
    max_ingest_wait_seconds: float = Field(default=5.0, gt=0, le=300)
    api_key_open311: SecretStr | None = None
    # The deadline scheduler in `gateway serve` (off when another process runs `gateway clocks run`).
    scheduler_enabled: bool = True

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown ISO country code {value!r}; use e.g. MA or DZ")
        return value

    @field_validator("public_url", "twilio_api_base", "telegram_api_base")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None if value == "" else value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL; write it like https://gateway.example.org")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _db(cls, value: str | None) -> str | None:
        if value and not value.split(":", 1)[0].split("+")[0] in ("sqlite", "postgresql", "postgres"):
            raise ValueError("only sqlite:///path and postgresql://user@host:port/db are supported")
        return value or None

    # -- derived -------------------------------------------------------------------------------
    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gateway.sqlite3').resolve()}"

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def telegram_configured(self) -> bool:
        return bool(self.telegram_bot_token)

    @property
    def email_configured(self) -> bool:
        return bool(self.imap_host or self.smtp_host)

    def check(self) -> None:
        """Cross-field checks that pydantic cannot express per field."""
        if bool(self.twilio_account_sid) != bool(self.twilio_auth_token):
            missing = "GATEWAY_TWILIO_AUTH_TOKEN" if self.twilio_account_sid else "GATEWAY_TWILIO_ACCOUNT_SID"
            raise ConfigError(f"{missing} is not set: Twilio needs both the account SID and the auth token "
                              "(unset both for the sandbox)")
        if self.twilio_configured and not self.public_url:
            raise ConfigError("GATEWAY_PUBLIC_URL is not set: Twilio signatures are computed over the public "
                              "URL; set it to the address Twilio calls, e.g. https://gateway.example.org")
        if self.telegram_configured and not self.telegram_secret_token:
            raise ConfigError("GATEWAY_TELEGRAM_SECRET_TOKEN is not set: the Telegram webhook must be "
                              "authenticated; set a random string of 1-256 characters A-Z a-z 0-9 _ -")
        if self.imap_host and not (self.imap_user and self.imap_password):
            raise ConfigError("GATEWAY_IMAP_USER / GATEWAY_IMAP_PASSWORD are not set: IMAP needs a login")
        if self.email_configured and not self.email_address:
            raise ConfigError("GATEWAY_EMAIL_ADDRESS is not set: the mailbox address is needed for replies")


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus explicit overrides) and validate, raising ConfigError."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            problems.append(f"GATEWAY_{field.upper()}: {err['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from exc
    settings.check()
    return settings
