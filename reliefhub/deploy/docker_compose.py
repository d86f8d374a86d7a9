"""docker-compose.yml: one host with PostgreSQL, Redis, a one-shot migration, every service and its worker, the
merged API docs and the nginx gateway."""

from __future__ import annotations

import json
from typing import Any

from reliefhub.deploy.common import (
    COMPOSE_DYNAMIC_RANGE,
    COMPOSE_GATEWAY_ADDRESS,
    COMPOSE_SUBNET,
    DOCS,
    DOCS_ARGS,
    GENERATED,
    METRICS_PORT,
    NGINX_CONF,
    NGINX_IMAGE,
    PORT,
    exposure,
    service_urls,
)
from reliefhub.deploy.yamlfiles import Alias, Anchor
from reliefhub.registry import services


def _python_probe(path: str) -> list[str]:
    code = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{PORT}{path}', timeout=4)"
    return ["CMD", "python", "-c", code]


def compose() -> dict[str, Any]:
    names = list(services())
    env = {
        "RELIEFHUB_ENVIRONMENT": "production",
        "DATABASE_URL": "postgresql+asyncpg://reliefhub:${POSTGRES_PASSWORD:-reliefhub}@db:5432/reliefhub",
        "REDIS_URL": "redis://redis:6379/0",
        "RELIEFHUB_JWT_SECRET": "${RELIEFHUB_JWT_SECRET:?set RELIEFHUB_JWT_SECRET (32+ characters)}",
        "RELIEFHUB_PUBLIC_BASE_URL": "${RELIEFHUB_PUBLIC_BASE_URL:-http://localhost:8000}",
        "RELIEFHUB_GATEWAY_URL": f"http://gateway:{PORT}",
        "RELIEFHUB_SERVICE_URLS": service_urls(),
        "RELIEFHUB_DB_POOL_SIZE": "10",
        "RELIEFHUB_TRUSTED_PROXIES": json.dumps([COMPOSE_GATEWAY_ADDRESS]),
        **exposure(),
    }
    app = {
        "image": "${RELIEFHUB_IMAGE:-reliefhub:latest}",
        "build": {"context": ".", "dockerfile": "deploy/Dockerfile"},
        "environment": Alias("env"),
        "depends_on": {"migrate": {"condition": "service_completed_successfully"}},
        "restart": "unless-stopped",
    }
    check = {"interval": "10s", "timeout": "5s", "retries": 6, "start_period": "30s"}
    svcs: dict[str, Any] = {
        "db": {
            "image": "postgres:16",
            "command": ["postgres", "-c", "max_connections=200"],
            "environment": {
                "POSTGRES_USER": "reliefhub",
                "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:-reliefhub}",
                "POSTGRES_DB": "reliefhub",
            },
            "volumes": ["pgdata:/var/lib/postgresql/data"],
            "healthcheck": {
                "test": ["CMD-SHELL", "pg_isready -U reliefhub -d reliefhub"],
                "interval": "5s",
                "timeout": "3s",
                "retries": 20,
            },
            "restart": "unless-stopped",
        },
        "redis": {
            "image": "redis:7",
            "command": ["redis-server", "--appendonly", "yes"],
            "volumes": ["redisdata:/data"],
            "healthcheck": {"test": ["CMD", "redis-cli", "ping"], "interval": "5s", "timeout": "3s", "retries": 20},
            "restart": "unless-stopped",
        },
        "migrate": {
            "<<": Alias("app"),
            "command": ["migrate"],
            "restart": "no",
            "depends_on": {
                "db": {"condition": "service_healthy"},
                "redis": {"condition": "service_healthy"},
            },
        },
    }
    for name in names:
        svcs[name] = {
            "<<": Alias("app"),
            "command": ["serve", name],
            "expose": [str(METRICS_PORT)],
            "healthcheck": {"test": _python_probe("/readyz"), **check},
        }
    for name in names:
        svcs[f"{name}-worker"] = {
            "<<": Alias("app"),
            "command": ["worker", name],
            "expose": [str(METRICS_PORT)],
            "stop_grace_period": "30s",
        }
    svcs[DOCS] = {
        "<<": Alias("app"),
        "entrypoint": ["uvicorn"],
        "command": DOCS_ARGS,
        "healthcheck": {"test": _python_probe("/healthz"), **check},
    }
    svcs["gateway"] = {
        "image": NGINX_IMAGE,
        "ports": [f"${{RELIEFHUB_PORT:-{PORT}}}:{PORT}"],
        "volumes": [f"./{NGINX_CONF}:/etc/nginx/nginx.conf:ro"],
        "depends_on": {name: {"condition": "service_started"} for name in [*names, DOCS]},
        "networks": {"default": {"ipv4_address": COMPOSE_GATEWAY_ADDRESS}},
        "healthcheck": {
            "test": ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{PORT}/healthz"],
            "interval": "10s",
            "timeout": "3s",
            "retries": 3,
        },
        "restart": "unless-stopped",
    }
    return {
        "x-env": Anchor("env", env),
        "x-app": Anchor("app", app),
        "services": svcs,
        "networks": {"default": {"ipam": {"config": [{"subnet": COMPOSE_SUBNET, "ip_range": COMPOSE_DYNAMIC_RANGE}]}}},
        "volumes": {"pgdata": {}, "redisdata": {}},
    }


COMPOSE_COMMENT = (
    GENERATED + "\n\n"
    "One host: PostgreSQL, Redis, a one-shot migration, every service and its worker, the merged API docs and\n"
    "the nginx gateway on :8000 (deploy/nginx/nginx.conf). Set RELIEFHUB_JWT_SECRET (32+ characters) in the\n"
    "environment or an .env file, then `docker compose up -d --build`."
)
