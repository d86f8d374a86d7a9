"""The settings every test runs with, and where the repository is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def make_test_settings(db_url: str, redis_url: str, **overrides: Any) -> Settings:
    """Settings for tests: a test secret, and every interval compressed so that events flow in moments."""
    values: dict[str, Any] = dict(
        environment="test",
        jwt_secret="test-secret-" + "t" * 32,
        database_url=db_url,
        redis_url=redis_url,
        consumer_claim_idle_ms=300,
        consumer_block_ms=100,
        relay_poll_seconds=0.2,
        stream_trim_seconds=3600,
        bus_metrics_seconds=0.5,
        matching_debounce_seconds=0.2,
        matching_global_seconds=3600,
        sweep_seconds=3600,
        db_pool_size=40,
        db_max_overflow=0,
        webhook_allowed_networks=["127.0.0.0/8", "::1/128"],
        webhook_retry_schedule=[0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4],
        webhook_poll_seconds=0.02,
    )
    return Settings(**{**values, **overrides})
