"""Prometheus metrics of every service and worker process (where they are served: `Settings.metrics_port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUEST_LATENCY = Histogram(
    "reliefhub_http_request_seconds",
    "HTTP request latency",
    ["service", "method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_BACKLOG = Gauge("reliefhub_outbox_backlog", "Outbox rows not yet published", ["service"])
OUTBOX_PUBLISHED = Counter("reliefhub_outbox_published_total", "Events published to Redis", ["service"])
EVENTS_HANDLED = Counter("reliefhub_events_handled_total", "Events handled by consumers", ["consumer", "outcome"])
CONSUMER_PENDING = Gauge("reliefhub_consumer_pending", "Entries pending in a consumer group", ["stream", "group"])
CONSUMER_LAG = Gauge("reliefhub_consumer_lag", "Entries not yet delivered to a consumer group", ["stream", "group"])
PROJECTION_LAG = Histogram(
    "reliefhub_projection_lag_seconds",
    "From an event's publication (its `time`, set in the transaction that commits it) to the commit of its effect"
    " in a consumer group",
    ["group"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
DEAD_LETTERS = Counter("reliefhub_dead_letters_total", "Events moved to a dead-letter stream", ["stream", "group"])
WEBHOOK_ATTEMPTS = Counter("reliefhub_webhook_attempts_total", "Webhook delivery attempts", ["result"])
ALLOCATION_SECONDS = Histogram(
    "reliefhub_allocation_seconds",
    "Allocation run phases: candidates (feasibility and scores) and solve (min-cost flow)",
    ["phase", "trigger"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
MATCHING_RUN_FAILURES = Counter(
    "reliefhub_matching_run_failures_total",
    "Continuous and periodic allocation runs of an item group that failed (the group backs off, then is retried)",
    ["trigger", "reason"],
)
MATCHING_BACKING_OFF = Gauge(
    "reliefhub_matching_scopes_backing_off", "Item groups whose last run failed, waiting to be retried"
)
