"""The process environment, read once at the entry point and passed down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["REQUEST_TIMEOUT_SECONDS", "SECRET_KEY_MIN_LENGTH", "Settings", "without_password"]

# How long `tend web` waits for a whole request, headers and body (see tend/timeouts.py):
# a webhook's form or a browser's GET arrives in well under a second.
REQUEST_TIMEOUT_SECONDS = 10.0

# The shortest TEND_SECRET_KEY accepted: it signs every link Tend sends (README and
# docs/deployment.md say this number; tests/test_docs.py holds them to it).
SECRET_KEY_MIN_LENGTH = 16


class Settings(BaseSettings):
    """Everything Tend reads from the environment (or a ``.env`` file beside it).

    Secrets are ``SecretStr`` so they print as ``**********``; the ritual file never holds them.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,  # `TWILIO_FROM=` is unset, as in a shell, not an empty value
    )

    config_path: Path = Field(Path("tend.toml"), validation_alias="TEND_CONFIG")
    database_url: str = Field(
        "sqlite:///tend.db", validation_alias=AliasChoices("DATABASE_URL", "TEND_DATABASE_URL")
    )
    twilio_account_sid: str | None = Field(None, validation_alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(None, validation_alias="TWILIO_AUTH_TOKEN")
    twilio_from: str | None = Field(None, validation_alias="TWILIO_FROM")
    twilio_messaging_service_sid: str | None = Field(
        None, validation_alias="TWILIO_MESSAGING_SERVICE_SID"
    )
    twilio_api_base_url: AnyHttpUrl | None = Field(None, validation_alias="TWILIO_API_BASE_URL")
    smtp_url: SecretStr | None = Field(None, validation_alias="SMTP_URL")
    smtp_from: str | None = Field(None, validation_alias="SMTP_FROM")
    public_url: AnyHttpUrl | None = Field(None, validation_alias="TEND_PUBLIC_URL")
    secret_key: SecretStr | None = Field(None, validation_alias="TEND_SECRET_KEY")
    port: int = Field(8000, ge=1, le=65535, validation_alias="PORT")
    # `tend worker` serves its own counters (sends, their duration and lateness) here.
    metrics_port: int | None = Field(None, ge=1, le=65535, validation_alias="TEND_METRICS_PORT")
    horizon_days: int = Field(14, ge=1, le=366, validation_alias="TEND_HORIZON_DAYS")
    senders: int = Field(32, ge=1, le=256, validation_alias="TEND_SENDERS")
    max_attempts: int = Field(5, ge=1, le=50, validation_alias="TEND_MAX_ATTEMPTS")
    claim_timeout_seconds: float = Field(300, gt=0, validation_alias="TEND_CLAIM_TIMEOUT_SECONDS")
    request_timeout_seconds: float = Field(
        REQUEST_TIMEOUT_SECONDS, gt=0, validation_alias="TEND_REQUEST_TIMEOUT_SECONDS"
    )
    notifiers: Annotated[dict[str, str], NoDecode] = Field(
        default={},
        validation_alias="TEND_NOTIFIERS",
        description="channel=package.module:Class pairs, comma-separated",
    )

    @field_validator("notifiers", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        """``sms=pkg.mod:Class,email=pkg.mod:Other``: which class serves a channel."""
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            channel, sep, path = part.partition("=")
            if not sep or not channel.strip() or ":" not in path:
                raise ValueError(f"{part!r}: write channel=package.module:Class")
            pairs[channel.strip()] = path.strip()
        return pairs

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < SECRET_KEY_MIN_LENGTH:
            raise ValueError(
                f"must be at least {SECRET_KEY_MIN_LENGTH} characters; make one with: python3 -c "
                "'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _sqlalchemy_url(cls, value: str) -> str:
        """Heroku's ``postgres://`` becomes SQLAlchemy's ``postgresql+psycopg://``."""
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value.removeprefix(prefix)
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A DATABASE_URL (Heroku's among them) carries the database password.
        for key, value in super().__repr_args__():
            if key == "database_url" and isinstance(value, str):
                value = without_password(value)
            yield key, value

    def missing(self, channel: str) -> list[str]:
        """The variables still missing when a provider is partly set up: a half-finished
        setup must stop the start, not quietly print to the console. Empty when the
        provider is fully set up, or not at all."""
        if channel == "sms":
            given = {
                "TWILIO_ACCOUNT_SID": bool(self.twilio_account_sid),
                "TWILIO_AUTH_TOKEN": bool(self.twilio_auth_token),
                "TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID": bool(
                    self.twilio_from or self.twilio_messaging_service_sid
                ),
            }
        elif channel == "email":
            given = {"SMTP_URL": bool(self.smtp_url), "SMTP_FROM": bool(self.smtp_from)}
        else:
            return []
        if not any(given.values()):
            return []
        return [name for name, present in given.items() if not present]

    @property
    def twilio_configured(self) -> bool:
        return bool(
            self.twilio_account_sid
            and self.twilio_auth_token
            and (self.twilio_from or self.twilio_messaging_service_sid)
        )

    @property
    def smtp_configured(self) -> bool:
        return bool(self.smtp_url and self.smtp_from)


def without_password(url: str) -> str:
    """`url` with any password replaced by ``***``, for logs and reprs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return "***"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
