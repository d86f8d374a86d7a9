"""JSON logs (structlog) carrying the trace id; no line holds a secret or a bearer token.

Tracebacks are plain (no local variables: rich's pretty tracebacks print them, and a request's locals hold its
token and the signing secret). Every rendered line is then redacted as defence in depth: values under
secret-bearing keys, JWTs, webhook secrets, Authorization values, URL passwords and the configured secrets."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import structlog

from shared.settings import Settings
from shared.tracing import current_trace_id

REDACTED = "[redacted]"
# A secret shorter than this is not searched for literally: it would redact ordinary words.
MIN_LITERAL_SECRET = 8

_configured = False

_SECRET_KEY = re.compile(r"(?i)(^|[_-])(authorization|secret|password|passwd|token|api[_-]?key|cookie|pin)$")
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # A JWS in compact form: its header is base64url JSON, so it always starts with "eyJ" ('{"').
    (re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"whsec_[A-Za-z0-9+/=_-]+"), "whsec_" + REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)(\s+|%20)[A-Za-z0-9._~+/=%-]+"), r"\1 " + REDACTED),
    (re.compile(r"(?i)(authorization[\"']?\s*[:=,]\s*(?:\(?b?[\"']))[^\"']+"), r"\1" + REDACTED),
    (re.compile(r"(://[^:/?#@\s]*:)[^@/?#\s]+@"), r"\1" + REDACTED + "@"),
]


def redact_text(text: str, literals: Iterable[str] = ()) -> str:
    for secret in literals:
        if len(secret) >= MIN_LITERAL_SECRET:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any, depth: int = 0) -> Any:
    if depth > 8:
        return value
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) and v else _redact_value(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_value(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact_value(v, depth + 1) for v in value)
    return value


def redact_secret_keys(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Values logged under a secret-bearing key (`authorization=`, `jwt_secret=`, `token=`…) are never shown."""
    return {
        k: REDACTED if _SECRET_KEY.search(k) and v and not k.startswith("_") else _redact_value(v)
        for k, v in event.items()
    }


class RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """Redacts the finished line, whatever put a secret into it (a message, an exception, a repr)."""

    def __init__(self, *args: Any, secrets: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record), self.secrets)


def _add_trace(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    trace_id = current_trace_id()
    if trace_id:
        event.setdefault("trace_id", trace_id)
    return event


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Route every log (structlog's, the standard library's, uvicorn's) through one redacting handler.
    Once per process, unless a `stream` is given (then always, writing there)."""
    global _configured
    if _configured and stream is None:
        return
    _configured = True
    level = logging.WARNING if settings.environment == "test" else logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace,
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
        if settings.environment == "development"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        RedactingFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,  # a plain traceback string, before redaction sees it
                redact_secret_keys,
                renderer,
            ],
            secrets=_secrets_of(settings),
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # uvicorn's own handlers would bypass redaction (and its error log prints whole tracebacks).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _secrets_of(settings: Settings) -> list[str]:
    """The configured secrets, and the password of each configured URL."""
    found = [settings.jwt_secret]
    for url in (settings.database_url, settings.redis_url):
        match = re.match(r"^[a-z0-9+.-]+://[^:/@]*:([^@/]+)@", url)
        if match:
            found.append(match.group(1))
    return found
