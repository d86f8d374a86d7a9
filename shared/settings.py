"""Settings shared by every service, read from the environment (prefix ``RELIEFHUB_``)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, FilePath, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SIGNING_SECRET = "reliefhub-development-secret-change-me"
# The asymmetric algorithms an identity provider's tokens may use (never HS256 or "none": the JWKS is public).
SigningAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RELIEFHUB_", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    environment: Literal["development", "test", "production"] = "development"
    # URLs may hold passwords, and the signing secret is one: none of them is shown in the settings' repr.
    database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/reliefhub",
        validation_alias=AliasChoices("RELIEFHUB_DATABASE_URL", "DATABASE_URL"),
        repr=False,
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("RELIEFHUB_REDIS_URL", "REDIS_URL"),
        repr=False,
    )
    # Connections per service process. Overflow connections are closed on return, so a pool that keeps
    # overflowing churns connections; size the pool for the expected concurrency instead.
    db_pool_size: int = 20
    db_max_overflow: int = 0
    # how long a request waits for a pooled connection before it is answered 503 (every connection busy)
    db_pool_timeout_seconds: float = 10

    # Auth: HS256 JWTs. The default secret only exists so development works out of the box.
    jwt_secret: str = Field(DEFAULT_SIGNING_SECRET, repr=False)
    jwt_issuer: str = "reliefhub"
    jwt_audience: str = "reliefhub"
    token_ttl_seconds: int = 12 * 3600
    # Identity provider (OpenID Connect): its access tokens (RS256/ES256) are accepted beside the HS256 ones when
    # issuer, audience and JWKS URL are set. The JWKS is cached for `oidc_jwks_cache_seconds` and fetched again
    # for a key id it does not hold, at most once per `oidc_jwks_cooldown_seconds`. Claim names may be dotted
    # paths into nested claims (Keycloak's realm roles: `realm_access.roles`).
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_algorithms: list[SigningAlgorithm] = ["RS256", "ES256"]
    oidc_claim_org: str = "org"
    oidc_claim_roles: str = "roles"
    oidc_claim_regions: str = "regions"
    oidc_claim_group: str = "group"
    oidc_jwks_cache_seconds: float = Field(300.0, gt=0)
    oidc_jwks_cooldown_seconds: float = Field(30.0, ge=0)
    oidc_jwks_timeout_seconds: float = Field(5.0, gt=0)
    # Clock skew allowed between the identity provider and this host (exp, nbf, iat).
    oidc_leeway_seconds: float = Field(10.0, ge=0)
    # HS256 tokens signed with jwt_secret (`reliefhub token create`). None: accepted, except in production once an
    # identity provider is configured; the services' own calls to each other are accepted whatever this says.
    allow_hs256: bool | None = None

    # Idempotency-Key records are kept at least this long (clients may retry within it).
    idempotency_ttl_hours: int = 24
    # A key whose first request has been in flight longer than this is considered abandoned.
    idempotency_lock_seconds: int = 60

    max_body_bytes: int = 1_000_000
    max_import_bytes: int = 10_000_000
    max_import_rows: int = 20_000

    # Event bus.
    relay_batch_size: int = 500
    # A relay is woken by the rows committed (NOTIFY from other processes); it polls every `relay_poll_seconds`
    # as a safety net, and every `relay_pace_seconds` while its NOTIFY connection is down. A relay that published
    # rows waits `relay_pace_seconds` before its next batch: what came meanwhile goes as one batch.
    relay_poll_seconds: float = 1.0
    relay_pace_seconds: float = 0.1
    # After Redis lost its data, events published this recently are published again (see OutboxRelay).
    relay_republish_seconds: float = 6 * 3600
    consumer_block_ms: int = 1000
    consumer_batch_size: int = 100
    consumer_claim_idle_ms: int = 30_000
    consumer_max_deliveries: int = 5
    stream_trim_seconds: float = 60.0
    # How often a worker refreshes the bus's gauges: outbox backlog (from PostgreSQL, so it shows while Redis
    # is away), consumer groups' pending entries and lag.
    bus_metrics_seconds: float = 10.0

    # needs: a need not re-confirmed for this many days expires.
    need_confirm_days: int = 14
    # A partner's claim on need lines that no coordinator confirmed within this many hours expires.
    claim_confirm_within_hours: float = 24
    sweep_seconds: float = 60.0

    # Outbound service-to-service HTTP.
    http_timeout_seconds: float = 5.0
    http_retries: int = 3

    public_base_url: str = "http://127.0.0.1:8000"
    # Proxies (IP addresses or CIDR networks) whose X-Forwarded-For and X-Forwarded-Proto are believed: a request
    # from one of them is taken to come from the address it forwards for (rate limits, logs). None by default,
    # not even loopback: a header any client can send is otherwise just a claim.
    trusted_proxies: list[str] = []
    # Where one service reaches another: the gateway, unless a service has its own URL here
    # (RELIEFHUB_SERVICE_URLS='{"supply": "http://supply:8000"}').
    gateway_url: str = "http://127.0.0.1:8000"
    service_urls: dict[str, str] = {}

    # A service's own /docs, /redoc and /openapi.json on its API port (None: outside production only). The public
    # document is the gateway's merged one (`api-docs` in deployments), whatever this says.
    expose_docs: bool | None = None
    # A service process (`reliefhub serve <service>`) serves its Prometheus metrics on this port, and then never on
    # its API port; 0: at /metrics on the API port, except in production, where the API port never serves them.
    metrics_port: int = 0
    # A worker process (`reliefhub worker <service>`) serves its Prometheus metrics — outbox backlog, consumer
    # lag and pending entries, dead letters, webhook attempts, allocation times — on this port (0: not at all).
    worker_metrics_port: int = 0

    # matching: continuous runs go item group by item group (an item with its substitutes), each in its own
    # transaction, at most `matching_concurrency` at once per worker. A group whose run fails (for one, because
    # it waited longer than the lock timeout for a proposal being decided) is retried after the backoff, which
    # doubles with each failure up to its maximum. A group is due once its first queued mark is
    # `matching_debounce_seconds` old; marks committed wake its dispatcher (NOTIFY from other processes), which
    # also polls every `matching_poll_seconds` as a safety net (every debounce interval while its NOTIFY
    # connection is down).
    matching_debounce_seconds: float = 0.5
    matching_poll_seconds: float = 2.0
    matching_global_seconds: float = 900.0
    matching_expire_seconds: float = 30.0
    matching_concurrency: int = 4
    # Large allocation networks are solved in solver processes, this many at once per run.
    matching_solver_processes: int = 2
    matching_lock_timeout_seconds: float = 2.0
    matching_backoff_seconds: float = 1.0
    matching_backoff_max_seconds: float = 300.0
    # A continuous run whose marks name the changed lines and lots reads only their component (lines → their
    # nearest lots with supply left → lines with demand left that could take those lots → …); one that grows past
    # this many lines and lots together, or this many hops, runs the whole item group instead.
    matching_component_max_size: int = 2000
    matching_component_max_hops: int = 8

    # logistics: accepted proposals become shipments by themselves (lines of one route join one shipment);
    # wrong handover PINs lock receipt for a while; the public tracking page is rate-limited per client.
    logistics_auto_shipments: bool = True
    pin_max_failures: int = 5
    pin_lock_seconds: int = 900
    track_requests_per_minute: int = 60

    # webhooks: the delay before each attempt (the first is immediate; ±20 % jitter), the HTTP timeout, the
    # grace period of a rotated secret, how long an endpoint may fail before it is disabled, how many
    # attempts run at once per endpoint and in all, and networks that may be called although private
    # (loopback in development and tests). Production also requires https.
    webhook_retry_schedule: list[float] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    webhook_timeout_seconds: float = 15.0
    webhook_secret_grace_seconds: int = 24 * 3600
    webhook_disable_after_seconds: float = 5 * 86400
    webhook_concurrency_per_endpoint: int = 8
    webhook_concurrency: int = 256
    # The dispatcher sleeps until the next delivery is due or deliveries are written (NOTIFY), at most this long.
    webhook_poll_seconds: float = 2.0
    webhook_allowed_networks: list[str] = []
    webhook_max_payload_bytes: int = 20_000
    # PEM certificates of CAs trusted for webhook TLS besides the system's (receivers behind a private CA).
    webhook_ca_bundle: FilePath | None = None

    # The organisations registry (the partners service). When it is on, a write by an organisation that is not
    # approved there is refused (403); None: on in production only. An approved status is believed this long
    # before the registry is asked again, and — when the registry cannot be asked — up to the stale limit.
    org_registry: bool | None = None
    org_status_cache_seconds: float = 30.0
    org_status_stale_seconds: float = 600.0

    # partners: the working groups that take customs, translation and procurement-quote tasks (device checks go
    # to the group the catalog names), how long each kind of task may take, how often overdue tasks are flagged.
    customs_group: str = "customs"
    translation_group: str = "translation"
    procurement_group: str = "procurement"
    # supply: the working group that records money received against cash pledges (besides coordinators).
    fundraising_group: str = "fundraising"
    task_due_hours: dict[str, float] = {
        "device_check": 24.0,
        "translation": 24.0,
        "customs_clearance": 72.0,
        "procurement_quote": 48.0,
    }
    task_sweep_seconds: float = 60.0

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        networks = []
        for entry in value:
            try:
                networks.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return networks

    @property
    def oidc_enabled(self) -> bool:
        return self.oidc_issuer is not None

    @property
    def hs256_accepted(self) -> bool:
        """Whether people's HS256 tokens are accepted (the services' own always are)."""
        if self.allow_hs256 is not None:
            return self.allow_hs256
        return not (self.environment == "production" and self.oidc_enabled)

    @property
    def docs_exposed(self) -> bool:
        return self.environment != "production" if self.expose_docs is None else self.expose_docs

    @property
    def org_registry_enforced(self) -> bool:
        return self.environment == "production" if self.org_registry is None else self.org_registry

    @property
    def metrics_on_api_port(self) -> bool:
        return self.metrics_port == 0 and self.environment != "production"

    @model_validator(mode="after")
    def _identity_provider(self) -> Settings:
        named = {
            "RELIEFHUB_OIDC_ISSUER": self.oidc_issuer,
            "RELIEFHUB_OIDC_AUDIENCE": self.oidc_audience,
            "RELIEFHUB_OIDC_JWKS_URL": self.oidc_jwks_url,
        }
        missing = [name for name, value in named.items() if not value]
        if len(missing) < len(named) and missing:
            raise ValueError(f"an identity provider needs issuer, audience and JWKS URL: set {', '.join(missing)}")
        if self.oidc_jwks_url and not self.oidc_jwks_url.startswith(("https://", "http://")):
            raise ValueError("RELIEFHUB_OIDC_JWKS_URL must be an http(s) URL")
        if not self.oidc_algorithms:
            raise ValueError("RELIEFHUB_OIDC_ALGORITHMS must name at least one algorithm")
        for claim in ("org", "roles", "regions", "group"):
            if not getattr(self, f"oidc_claim_{claim}").strip():
                raise ValueError(f"RELIEFHUB_OIDC_CLAIM_{claim.upper()} must not be empty")
        return self

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.environment != "development" and self.jwt_secret == DEFAULT_SIGNING_SECRET:
            raise ValueError("RELIEFHUB_JWT_SECRET must be set outside development")
        if self.environment == "production" and len(self.jwt_secret) < 32:
            raise ValueError("RELIEFHUB_JWT_SECRET must be at least 32 characters in production")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
