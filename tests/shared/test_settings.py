"""Settings from the environment: only development takes the default secret; URL aliases are honoured."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import DEFAULT_SIGNING_SECRET, Settings

ENV = (
    "RELIEFHUB_ENVIRONMENT",
    "RELIEFHUB_JWT_SECRET",
    "RELIEFHUB_DATABASE_URL",
    "DATABASE_URL",
    "RELIEFHUB_REDIS_URL",
    "REDIS_URL",
    "RELIEFHUB_MAX_BODY_BYTES",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_production_refuses_the_development_secret(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="RELIEFHUB_JWT_SECRET"):
        Settings(environment="production")
    clean_env.setenv("RELIEFHUB_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="RELIEFHUB_JWT_SECRET"):
        Settings()
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(environment="production", jwt_secret="short-secret")


def test_production_takes_a_long_secret(clean_env: pytest.MonkeyPatch) -> None:
    secret = "s" * 32
    assert Settings(environment="production", jwt_secret=secret).jwt_secret == secret
    clean_env.setenv("RELIEFHUB_ENVIRONMENT", "production")
    clean_env.setenv("RELIEFHUB_JWT_SECRET", "e" * 48)
    settings = Settings()
    assert settings.environment == "production" and settings.jwt_secret == "e" * 48


def test_development_works_out_of_the_box() -> None:
    assert Settings(environment="development").jwt_secret == DEFAULT_SIGNING_SECRET


def test_every_other_environment_refuses_the_development_secret() -> None:
    with pytest.raises(ValidationError, match="outside development"):
        Settings(environment="test")
    assert Settings(environment="test", jwt_secret="t" * 40).environment == "test"


def test_an_unknown_environment_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(environment="staging")


def test_database_url_and_redis_url_are_read_from_the_plain_names(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE_URL", "postgresql+asyncpg://app@db.internal:5432/relief")
    clean_env.setenv("REDIS_URL", "redis://cache.internal:6379/2")
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://app@db.internal:5432/relief"
    assert settings.redis_url == "redis://cache.internal:6379/2"


def test_the_prefixed_names_win_over_the_plain_ones(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE_URL", "postgresql+asyncpg://plain/db")
    clean_env.setenv("RELIEFHUB_DATABASE_URL", "postgresql+asyncpg://prefixed/db")
    clean_env.setenv("RELIEFHUB_REDIS_URL", "redis://prefixed:6379/0")
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://prefixed/db"
    assert settings.redis_url == "redis://prefixed:6379/0"


def test_keyword_arguments_and_prefixed_variables(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings(database_url="postgresql+asyncpg://kw/db").database_url == "postgresql+asyncpg://kw/db"
    clean_env.setenv("RELIEFHUB_MAX_BODY_BYTES", "1234")
    assert Settings().max_body_bytes == 1234
    clean_env.setenv("RELIEFHUB_MAX_BODY_BYTES", "lots")
    with pytest.raises(ValidationError):
        Settings()


def test_the_defaults_keep_idempotency_records_a_day() -> None:
    settings = Settings()
    assert settings.idempotency_ttl_hours >= 24
    assert settings.database_url.startswith("postgresql+asyncpg://")
