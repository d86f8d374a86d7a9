"""nginx: the gateway of docker-compose.yml (or, `reliefhub deploy nginx`, in front of processes on known
addresses): `/v1/<collection>` to its service, the merged API docs, nothing else."""

from __future__ import annotations

from urllib.parse import urlsplit

from reliefhub.deploy.common import (
    BODY_LIMIT,
    DOCS,
    DOCS_PATHS,
    GENERATED,
    PORT,
    RETRY_AFTER,
    UPSTREAM_KEEPALIVE,
    UPSTREAM_KEEPALIVE_TIMEOUT,
    collections_by_service,
    sub_resources_by_service,
)
from reliefhub.registry import services


def upstream_servers() -> dict[str, str]:
    """Each upstream of the compose gateway and its server: the service's name in Docker's DNS."""
    return {name: f"{name}:{PORT}" for name in [*services(), DOCS]}


def host_servers(service_urls: dict[str, str], docs: str) -> dict[str, str]:
    """The upstreams of a gateway in front of processes on known addresses: every service's `host:port` from
    its RELIEFHUB_SERVICE_URLS entry (plain http: the gateway is the TLS end), `api-docs` at `docs`."""
    missing = [name for name in services() if name not in service_urls]
    if missing:
        raise ValueError(f"RELIEFHUB_SERVICE_URLS has no URL for {', '.join(missing)}")
    servers = {}
    for name in services():
        url = urlsplit(service_urls[name])
        if url.scheme != "http" or not url.hostname or url.path not in ("", "/"):
            raise ValueError(f"the URL of {name} is not http://host:port ({service_urls[name]})")
        servers[name] = url.netloc if url.port else f"{url.netloc}:80"
    servers[DOCS] = docs
    return servers


def nginx_conf(
    servers: dict[str, str] | None = None,
    *,
    listen: str = str(PORT),
    resolve: bool = True,
    head: str = GENERATED,
) -> str:
    """The gateway's configuration. `servers`: each upstream (every service and `api-docs`) → `host:port`
    (default: compose's names). With `resolve` (compose), nginx asks Docker's DNS again as containers come, go
    and scale (`server … resolve` needs nginx 1.27.3 or later); without, names are resolved once at start."""
    servers = servers if servers is not None else upstream_servers()
    missing = {*services(), DOCS} - set(servers)
    if missing:
        raise ValueError(f"no server for {', '.join(sorted(missing))}")
    upstreams = "".join(
        f"    upstream {name} {{\n"
        f"        zone {name} 64k;\n"
        f"        server {servers[name]}{' resolve' if resolve else ''};\n"
        f"        keepalive {UPSTREAM_KEEPALIVE};\n"
        f"        keepalive_timeout {UPSTREAM_KEEPALIVE_TIMEOUT};\n"
        f"    }}\n\n"
        for name in [*services(), DOCS]
    )
    # Regex locations are tried in order: a sub-resource another service serves comes before its collection's.
    routes = [
        f"        location ~ {pattern} {{\n            proxy_pass http://{service};\n        }}\n"
        for service, patterns in sub_resources_by_service().items()
        for pattern in patterns
    ]
    for service, collections in collections_by_service().items():
        if collections:
            routes.append(
                f"        location ~ ^/v1/({'|'.join(collections)})(/|$) {{\n"
                f"            proxy_pass http://{service};\n"
                f"        }}\n"
            )
    resolver = (
        "    # Docker's DNS, asked again as containers come and go or scale (`docker compose up --scale needs=3`).\n"
        "    resolver 127.0.0.11 valid=10s ipv6=off;\n"
        "    resolver_timeout 5s;\n"
        if resolve
        else ""
    )
    not_found = '{"type":"about:blank","title":"Not Found","status":404,"detail":"No resource at this path."}'
    unavailable = (
        '{"type":"about:blank","title":"Service Unavailable","status":503,'
        f'"detail":"The service is unreachable or overloaded; retry after {RETRY_AFTER} seconds."}}'
    )
    docs = "".join(
        f"        location = {path} {{\n            proxy_pass http://{DOCS};\n        }}\n\n" for path in DOCS_PATHS
    )
    comment = "".join(f"# {line}\n" for line in head.splitlines())
    return f"""{comment}#
# The gateway: /v1/<collection> to the service that owns it, /openapi.json, /docs and /redoc to the merged document
# ({DOCS}), /healthz answered here, nothing else (/metrics, /readyz, a service's own /docs stay inside).
# Kubernetes routes the same paths with its Ingress. The services trust this gateway's X-Forwarded-For
# (RELIEFHUB_TRUSTED_PROXIES), which it sets to the address that connected, whatever the client sent.

worker_processes auto;
error_log /dev/stderr warn;

events {{
    worker_connections 4096;
}}

http {{
    log_format main '$remote_addr "$request" $status $body_bytes_sent $request_time '
                    '$upstream_addr $upstream_response_time "$http_traceparent"';
    access_log /dev/stdout main;
    server_tokens off;
    client_max_body_size {BODY_LIMIT};
{resolver}
    # Keep-alive to the upstreams: HTTP/1.1 and no `Connection: close` passed on.
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_connect_timeout 5s;
    proxy_read_timeout 120s;
    proxy_send_timeout 120s;

{upstreams}    server {{
        listen {listen};

{"".join(routes)}
{docs}        location = /healthz {{
            default_type application/json;
            return 200 '{{"status":"ok"}}';
        }}

        location / {{
            default_type application/problem+json;
            return 404 '{not_found}';
        }}

        # nginx's own errors only (a service's 503 passes through as the service wrote it).
        error_page 502 503 504 = @unavailable;
        location @unavailable {{
            default_type application/problem+json;
            add_header Retry-After {RETRY_AFTER} always;
            return 503 '{unavailable}';
        }}
    }}
}}
"""
