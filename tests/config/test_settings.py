"""Settings come from the environment and a ``.env`` file; secrets never show when printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config.model import Household, Partner
from config.settings import Settings

READ = [
    "TEND_CONFIG",
    "DATABASE_URL",
    "TEND_DATABASE_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM",
    "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_API_BASE_URL",
    "SMTP_URL",
    "SMTP_FROM",
    "TEND_PUBLIC_URL",
    "TEND_SECRET_KEY",
    "PORT",
    "TEND_REQUEST_TIMEOUT_SECONDS",
]

AUTH_TOKEN = "twilio-auth-token-4f9a1c"
SMTP_PASSWORD = "smtp-pass-8d2e"
SECRET_KEY = "secret-key-77b0e1"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No variable of the machine running the tests, and a working directory without ``.env``."""
    for name in READ:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_env(directory: Path, *lines: str) -> None:
    (directory / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_defaults_need_no_environment_at_all() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite:///tend.db"
    assert settings.port == 8000
    assert settings.config_path == Path("tend.toml")
    assert settings.public_url is None
    assert settings.secret_key is None


def test_without_twilio_or_smtp_messages_go_to_the_console() -> None:
    settings = Settings()
    assert settings.twilio_configured is False
    assert settings.smtp_configured is False


def test_database_url_is_read_from_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///elsewhere.db")
    assert Settings().database_url == "sqlite:///elsewhere.db"


def test_database_url_is_read_from_tend_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEND_DATABASE_URL", "sqlite:///tend-own.db")
    assert Settings().database_url == "sqlite:///tend-own.db"


def test_database_url_wins_over_tend_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///first.db")
    monkeypatch.setenv("TEND_DATABASE_URL", "sqlite:///second.db")
    assert Settings().database_url == "sqlite:///first.db"


@pytest.mark.parametrize(
    ("given", "used"),
    [
        (
            "postgres://u:p@db.example.com:5432/tend",
            "postgresql+psycopg://u:p@db.example.com:5432/tend",
        ),
        ("postgresql://db/tend", "postgresql+psycopg://db/tend"),
        ("postgresql+psycopg://db/tend", "postgresql+psycopg://db/tend"),
        ("sqlite:////var/lib/tend.db", "sqlite:////var/lib/tend.db"),
    ],
)
def test_heroku_postgres_urls_are_rewritten_for_psycopg(
    monkeypatch: pytest.MonkeyPatch, given: str, used: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", given)
    assert Settings().database_url == used


def test_a_dotenv_file_in_the_working_directory_is_read(clean_environment: Path) -> None:
    write_env(
        clean_environment,
        "TEND_CONFIG=rituals/ours.toml",
        "DATABASE_URL=postgres://db/tend",
        "PORT=5050",
        "TEND_PUBLIC_URL=https://tend.example.com",
    )
    settings = Settings()
    assert settings.config_path == Path("rituals/ours.toml")
    assert settings.database_url == "postgresql+psycopg://db/tend"
    assert settings.port == 5050
    assert str(settings.public_url) == "https://tend.example.com/"


def test_the_environment_wins_over_the_dotenv_file(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_env(clean_environment, "PORT=5050", "TEND_CONFIG=from-dotenv.toml")
    monkeypatch.setenv("PORT", "6060")
    settings = Settings()
    assert settings.port == 6060
    assert settings.config_path == Path("from-dotenv.toml")


def test_a_port_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "70000")
    with pytest.raises(ValidationError):
        Settings()


def test_the_request_timeout_is_ten_seconds_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().request_timeout_seconds == 10
    monkeypatch.setenv("TEND_REQUEST_TIMEOUT_SECONDS", "2.5")
    assert Settings().request_timeout_seconds == 2.5
    monkeypatch.setenv("TEND_REQUEST_TIMEOUT_SECONDS", "0")
    with pytest.raises(ValidationError, match="greater than 0"):
        Settings()


@pytest.mark.parametrize(
    ("variables", "configured"),
    [
        ({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": "+15550001"}, True),
        (
            {
                "TWILIO_ACCOUNT_SID": "AC1",
                "TWILIO_AUTH_TOKEN": "t",
                "TWILIO_MESSAGING_SERVICE_SID": "MG1",
            },
            True,
        ),
        ({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"}, False),
        ({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_FROM": "+15550001"}, False),
        ({"TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": "+15550001"}, False),
        ({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "", "TWILIO_FROM": "+15550001"}, False),
    ],
)
def test_twilio_is_configured_with_an_account_a_token_and_a_sender(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], configured: bool
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert Settings().twilio_configured is configured


@pytest.mark.parametrize(
    ("variables", "configured"),
    [
        ({"SMTP_URL": "smtp://u:p@mail:587?starttls=true", "SMTP_FROM": "tend@ex.com"}, True),
        ({"SMTP_URL": "smtp://mail:25"}, False),
        ({"SMTP_FROM": "tend@ex.com"}, False),
    ],
)
def test_smtp_is_configured_with_a_url_and_a_sender(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], configured: bool
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert Settings().smtp_configured is configured


def test_secrets_never_appear_when_settings_are_printed(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some from the environment, some from .env: both paths end in the same masking.
    write_env(clean_environment, f"SMTP_URL=smtp://tend:{SMTP_PASSWORD}@mail:587", "SMTP_FROM=t@x")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC123")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("TWILIO_FROM", "+15550001")
    monkeypatch.setenv("TEND_SECRET_KEY", SECRET_KEY)
    settings = Settings()
    for shown in (repr(settings), str(settings), f"{settings}", f"{settings!r}"):
        for secret in (AUTH_TOKEN, SMTP_PASSWORD, SECRET_KEY):
            assert secret not in shown
    # Still there for the code that needs them.
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == AUTH_TOKEN
    assert settings.smtp_url is not None
    assert SMTP_PASSWORD in settings.smtp_url.get_secret_value()
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == SECRET_KEY
    assert settings.twilio_configured and settings.smtp_configured


def test_the_database_password_never_appears_when_settings_are_printed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://tend:db-pass-31c9@db.example.com:5432/tend")
    settings = Settings()
    for shown in (repr(settings), str(settings)):
        assert "db-pass-31c9" not in shown
        assert "postgresql+psycopg://tend:***@db.example.com:5432/tend" in shown
    assert (
        settings.database_url == "postgresql+psycopg://tend:db-pass-31c9@db.example.com:5432/tend"
    )


# -- partners' addresses are masked too ---------------------------------------------------------


def test_a_partner_repr_masks_the_phone_number_and_the_email_local_part() -> None:
    partner = Partner(id="alex", name="Alex", phone="+15551230001", email="alexandra.w@example.com")
    household = Household(id="alex-sam", timezone="UTC", partners=[partner])
    for shown in (repr(partner), str(partner), repr(household), str(household)):
        assert "+15551230001" not in shown
        assert "5551230001" not in shown
        assert "alexandra.w" not in shown
        assert "@example.com" in shown  # the domain is enough to tell addresses apart
    # The values themselves are intact.
    assert partner.phone == "+15551230001"
    assert partner.email == "alexandra.w@example.com"


@pytest.mark.parametrize("value", ["x", "short-key"])
def test_a_short_secret_key_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEND_SECRET_KEY", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    [error] = caught.value.errors()
    assert error["loc"] == ("TEND_SECRET_KEY",)
    assert "at least 16 characters" in error["msg"]
    assert not value or value not in error["msg"]  # the CLI prints only the message


@pytest.mark.parametrize(
    ("env", "channel", "missing"),
    [
        ({}, "sms", []),
        ({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"}, "sms", [
            "TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID"
        ]),
        ({"TWILIO_FROM": "+15550001111"}, "sms", ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"]),
        ({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": ""}, "sms", [
            "TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID"  # empty is unset
        ]),
        ({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t",
          "TWILIO_MESSAGING_SERVICE_SID": "MG1"}, "sms", []),
        ({"SMTP_URL": "smtp://relay"}, "email", ["SMTP_FROM"]),
        ({"SMTP_FROM": "tend@example.com", "SMTP_URL": ""}, "email", ["SMTP_URL"]),
        ({"SMTP_URL": "smtp://relay", "SMTP_FROM": "tend@example.com"}, "email", []),
    ],
)  # fmt: skip
def test_a_partly_set_up_provider_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    env: dict[str, str],
    channel: str,
    missing: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings().missing(channel) == missing
