"""Deployment artefacts, rendered from the route table: the nginx gateway (`nginx.py`), docker-compose.yml
(`docker_compose.py`) and the Kubernetes manifests, a Kustomize base and a production overlay (`kubernetes.py`),
written as YAML by PyYAML (`yamlfiles.py`).

`reliefhub deploy render` writes them into the repository, where they are committed; tests/deploy fails when a
committed copy differs from what this package renders now. Every service (`services()`) becomes a deployment
serving its API and a worker deployment (each service has an outbox to relay, whatever it subscribes to); every
`/v1/<collection>` of `route_table()` becomes a route to its service, in nginx and in the Ingress alike.

`/openapi.json`, `/docs` and `/redoc` (with their files) are served by `reliefhub.gateway.docs_app`, a small
deployment of its own (`api-docs`): it merges every service's OpenAPI document as the development gateway does,
from the code in the image, so the document can neither go stale nor be routed to a single service that knows
only its own paths.
"""

from __future__ import annotations

from pathlib import Path

from reliefhub.deploy.common import (
    BASE,
    COMPOSE,
    DOCS,
    DOCS_PATHS,
    GENERATED,
    K8S,
    METRICS_PORT,
    NGINX_CONF,
    PORT,
    PRODUCTION,
    PRODUCTION_TRUSTED_PROXIES,
    RETRY_AFTER,
    UID,
    UPSTREAM_KEEPALIVE,
    collections_by_service,
)
from reliefhub.deploy.docker_compose import COMPOSE_COMMENT, compose
from reliefhub.deploy.kubernetes import (
    base_files,
    base_kustomization,
    production_kustomization,
    production_namespace,
    production_patches,
    secret_example,
)
from reliefhub.deploy.nginx import host_servers, nginx_conf
from reliefhub.deploy.yamlfiles import Alias, Anchor, to_yaml

__all__ = [
    "BASE",
    "COMPOSE",
    "DOCS",
    "DOCS_PATHS",
    "GENERATED",
    "K8S",
    "METRICS_PORT",
    "NGINX_CONF",
    "PORT",
    "PRODUCTION",
    "PRODUCTION_TRUSTED_PROXIES",
    "RETRY_AFTER",
    "UID",
    "UPSTREAM_KEEPALIVE",
    "Alias",
    "Anchor",
    "base_files",
    "check",
    "collections_by_service",
    "compose",
    "host_servers",
    "nginx_conf",
    "render",
    "stale",
    "to_yaml",
    "write",
]


def render() -> dict[str, str]:
    """Every generated file: its path from the repository root → its text."""
    files = {NGINX_CONF: nginx_conf(), COMPOSE: to_yaml(compose(), comment=COMPOSE_COMMENT)}
    for file, resources in base_files().items():
        files[f"{BASE}/{file}"] = to_yaml(*resources)
    files[f"{BASE}/kustomization.yaml"] = to_yaml(base_kustomization())
    files[f"{BASE}/secret.example.yaml"] = to_yaml(
        secret_example(),
        comment=GENERATED + "\n\nAn example, deliberately not in kustomization.yaml: create the real Secret yourself "
        "(deploy/README.md).",
    )
    files[f"{PRODUCTION}/kustomization.yaml"] = to_yaml(production_kustomization())
    files[f"{PRODUCTION}/namespace.yaml"] = to_yaml(production_namespace())
    for file, (_, operations) in production_patches().items():
        files[f"{PRODUCTION}/patches/{file}"] = to_yaml(operations)
    return files


def stale(root: Path, rendered: dict[str, str]) -> list[Path]:
    """Generated files under deploy/k8s that are rendered no more (a service or a patch removed)."""
    first = f"# {GENERATED.splitlines()[0]}"
    return sorted(
        path
        for path in (root / K8S).rglob("*.yaml")
        if path.relative_to(root).as_posix() not in rendered and path.read_text().startswith(first)
    )


def check(root: Path) -> list[Path]:
    """The generated files under `root` that are not as rendered now (missing, edited or stale)."""
    rendered = render()
    differ = [root / p for p, text in rendered.items() if not (root / p).exists() or (root / p).read_text() != text]
    return differ + stale(root, rendered)


def write(root: Path) -> list[Path]:
    """Write every generated file under `root` that differs, remove stale ones; the paths changed."""
    rendered = render()
    changed: list[Path] = []
    for relative, text in rendered.items():
        path = root / relative
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    for path in stale(root, rendered):
        path.unlink()
        changed.append(path)
    return changed
