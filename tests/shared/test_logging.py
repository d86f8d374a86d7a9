"""No log line holds a secret or a request's token, in development (console) or production (JSON) logs."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

import shared.logging as kit_logging
from shared.auth import Role, create_token
from shared.logging import configure_logging, redact_text
from shared.settings import Settings

SECRET = "signing-secret-" + "k" * 40
DB_PASSWORD = "pg-password-3141592"
WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LXZhbHVlLWZvci10ZXN0cw=="


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore")
    saved = (root.handlers[:], root.level, structlog.get_config(), kit_logging._configured)
    loggers = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in names}
    try:
        yield
    finally:
        root.handlers, level, config, kit_logging._configured = saved[0], saved[1], saved[2], saved[3]
        root.setLevel(level)
        structlog.configure(**config)
        for n, (handlers, propagate) in loggers.items():
            logging.getLogger(n).handlers, logging.getLogger(n).propagate = handlers, propagate


def settings_for(environment: str) -> Settings:
    return Settings(
        environment=environment,
        jwt_secret=SECRET,
        database_url=f"postgresql+asyncpg://reliefhub:{DB_PASSWORD}@db.internal:5432/reliefhub",
    )


def handle_request(settings: Settings, authorization: str) -> None:
    """Fails with the signing secret, the settings and the caller's token in its local variables."""
    secret = settings.jwt_secret
    token = authorization.removeprefix("Bearer ")
    headers = {"authorization": authorization, "x-webhook-secret": WEBHOOK_SECRET}
    assert secret and token and headers
    raise RuntimeError("the request could not be handled")


def handle_and_tell(authorization: str) -> None:
    """Fails with the token and secrets in the exception's own message."""
    raise ValueError(f"bad header {authorization!r} for {WEBHOOK_SECRET}, secret={SECRET}")


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("environment", ["development", "production"])
def test_logged_exceptions_show_no_secret_and_no_token(environment: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_for(environment)
    configure_logging(settings, stream=sys.stderr)  # the test's captured stderr
    token = create_token(sub="u-1", org="org-a", roles=[Role.coordinator], settings=settings)
    authorization = f"Bearer {token}"

    for call in (lambda: handle_request(settings, authorization), lambda: handle_and_tell(authorization)):
        try:
            call()
        except Exception:
            structlog.get_logger("reliefhub.test").exception("request failed", authorization=authorization)
            logging.getLogger("reliefhub.errors").exception("unhandled error on POST /v1/sites")
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    structlog.get_logger("reliefhub.test").warning(
        "calling", url=settings.database_url, headers={"Authorization": authorization}, jwt_secret=SECRET
    )
    logging.getLogger("reliefhub.test").warning("settings: %r; token %s", settings, token)

    err = capsys.readouterr().err
    assert err.count("RuntimeError: the request could not be handled") == 3, err  # the tracebacks are there
    assert err.count("ValueError: bad header") == 3 and "handle_request" in err, err
    for leaked in (SECRET, token, token.rsplit(".", 1)[1], WEBHOOK_SECRET, DB_PASSWORD):
        assert leaked not in err, f"{leaked[:12]}… in the {environment} log:\n{err}"
    assert "[redacted]" in err


def test_redaction_catches_secret_shapes() -> None:
    cases = {
        "Authorization: Bearer abc.def-ghi": "abc.def-ghi",
        "(b'authorization', b'Basic dXNlcjpwYXNz')": "dXNlcjpwYXNz",
        "{'authorization': 'opaque-session-value'}": "opaque-session-value",
        "redis://:r3d1s-pass@cache:6379/0": "r3d1s-pass",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.sig-nature_1 sent": "eyJzdWIiOiJ1In0",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    }
    for text, secret in cases.items():
        assert secret not in redact_text(text), text
    assert redact_text("plain words, http://host:8000/v1/needs") == "plain words, http://host:8000/v1/needs"
    assert redact_text(f"x {SECRET} y", [SECRET]) == "x [redacted] y"


def test_the_settings_repr_shows_no_secret() -> None:
    settings = settings_for("production")
    for text in (repr(settings), str(settings)):
        assert SECRET not in text and DB_PASSWORD not in text
    with pytest.raises(ValueError) as info:
        Settings(environment="production", jwt_secret="short-but-secret")
    assert "short-but-secret" not in str(info.value)
