"""Kubernetes: a Kustomize base (a Deployment, Service, autoscaler and disruption budget per service, a worker
Deployment per service, the API docs, the migration Job, configuration, the Ingress) and a production overlay."""

from __future__ import annotations

import json
from importlib.metadata import version
from typing import Any

from reliefhub.deploy.common import (
    BODY_LIMIT,
    CONFIG,
    DOCS,
    DOCS_ARGS,
    DOCS_PATHS,
    IMAGE,
    METRICS_PORT,
    NAMESPACE,
    PORT,
    PRODUCTION_HOST,
    PRODUCTION_IMAGE,
    PRODUCTION_TRUSTED_PROXIES,
    SECRETS,
    UID,
    collections_by_service,
    exposure,
    service_urls,
    sub_resources_by_service,
)
from reliefhub.registry import services


def _labels(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component}


def _metadata(name: str, component: str) -> dict[str, Any]:
    return {"name": name, "labels": {**_labels(name, component), "app.kubernetes.io/part-of": "reliefhub"}}


def _resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu_limit, "memory": memory_limit}}


POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": UID,
    "runAsGroup": UID,
    "fsGroup": UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
ENV_FROM = [{"configMapRef": {"name": CONFIG}}, {"secretRef": {"name": SECRETS}}]


def _http_probe(path: str, period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _pod(
    name: str,
    component: str,
    container: dict[str, Any],
    *,
    grace: int = 30,
    spread: bool = True,
    metrics: bool = False,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": POD_SECURITY,
        "terminationGracePeriodSeconds": grace,
    }
    if spread:
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": _labels(name, component)},
            }
        ]
    spec["containers"] = [
        {
            "name": name,
            "image": IMAGE,
            **container,
            "envFrom": ENV_FROM,
            "securityContext": CONTAINER_SECURITY,
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }
    ]
    spec["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    metadata: dict[str, Any] = {"labels": _labels(name, component)}
    if metrics:  # Prometheus scrapes the pod's metrics port, which its Service does not publish
        metadata["annotations"] = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(METRICS_PORT),
            "prometheus.io/path": "/metrics",
        }
    return {"metadata": metadata, "spec": spec}


def _deployment(name: str, component: str, pod: dict[str, Any], replicas: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if replicas is not None:  # otherwise the HorizontalPodAutoscaler owns the count
        spec["replicas"] = replicas
    spec["selector"] = {"matchLabels": _labels(name, component)}
    if component != "worker":
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    spec["template"] = pod
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(name, component), "spec": spec}


def _service(name: str, component: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, component),
        "spec": {
            "type": "ClusterIP",
            "selector": _labels(name, component),
            "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _autoscaler(name: str, component: str, low: int, high: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(name, component),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }


def _disruption_budget(name: str, component: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(name, component),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels(name, component)}},
    }


def api_manifests(service: str) -> list[dict[str, Any]]:
    container = {
        "args": ["serve", service],
        "ports": [
            {"name": "http", "containerPort": PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "startupProbe": _http_probe("/healthz", period=2, timeout=2, failures=60),
        "readinessProbe": _http_probe("/readyz", period=10, timeout=5, failures=3),
        "livenessProbe": _http_probe("/healthz", period=15, timeout=3, failures=4),
        # Let the endpoint be removed from the Service before the process stops taking requests.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        "resources": _resources("100m", "256Mi", "1", "512Mi"),
    }
    pod = _pod(service, "api", container, metrics=True)
    return [
        _deployment(service, "api", pod),
        _service(service, "api"),
        _autoscaler(service, "api", 2, 6),
        _disruption_budget(service, "api"),
    ]


def worker_manifests(service: str) -> list[dict[str, Any]]:
    name = f"{service}-worker"
    # No liveness probe: a worker serves no API and writes no heartbeat, and a probe that pinged PostgreSQL
    # or Redis would restart every healthy worker during an outage it already rides out by retrying. A worker
    # whose process ends is restarted by the Deployment; its metrics (outbox backlog, consumer lag) show one
    # that is alive but stuck.
    container = {
        "args": ["worker", service],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "resources": _resources("100m", "256Mi", "1", "512Mi"),
    }
    pod = _pod(name, "worker", container, grace=60, metrics=True)
    return [
        _deployment(name, "worker", pod),
        _autoscaler(name, "worker", 1, 4),
        _disruption_budget(name, "worker"),
    ]


def docs_manifests() -> list[dict[str, Any]]:
    container = {
        "command": ["uvicorn"],
        "args": DOCS_ARGS,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "startupProbe": _http_probe("/healthz", period=2, timeout=2, failures=60),
        "readinessProbe": _http_probe("/healthz", period=10, timeout=3, failures=3),
        "livenessProbe": _http_probe("/healthz", period=15, timeout=3, failures=4),
        "resources": _resources("50m", "256Mi", "500m", "512Mi"),
    }
    return [_deployment(DOCS, "docs", _pod(DOCS, "docs", container), replicas=1), _service(DOCS, "docs")]


def migrate_job() -> dict[str, Any]:
    container = {"args": ["migrate"], "resources": _resources("100m", "256Mi", "1", "512Mi")}
    pod = _pod("reliefhub-migrate", "migration", container, spread=False)
    pod["spec"] = {"restartPolicy": "Never", **pod["spec"]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata("reliefhub-migrate", "migration"),
        "spec": {
            "backoffLimit": 4,
            "activeDeadlineSeconds": 900,
            # A Job's pod template cannot change: once it is gone, the next apply runs the new release's.
            "ttlSecondsAfterFinished": 600,
            "template": pod,
        },
    }


def config_map() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(CONFIG, "config"),
        "data": {
            "RELIEFHUB_ENVIRONMENT": "production",
            "RELIEFHUB_SERVICE_URLS": service_urls(),
            "RELIEFHUB_PUBLIC_BASE_URL": "http://localhost:8000",
            "RELIEFHUB_DB_POOL_SIZE": "10",
            # Nothing in the base: the production overlay names the ingress controller's network.
            "RELIEFHUB_TRUSTED_PROXIES": "[]",
            **exposure(),
        },
    }


def secret_example() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(SECRETS, "config"),
        "type": "Opaque",
        "stringData": {
            "DATABASE_URL": "postgresql+asyncpg://reliefhub:CHANGE-ME@postgres.example.internal:5432/reliefhub",
            "REDIS_URL": "redis://:CHANGE-ME@redis.example.internal:6379/0",
            "RELIEFHUB_JWT_SECRET": "CHANGE-ME-to-at-least-32-random-characters",
        },
    }


def _backend(service: str) -> dict[str, Any]:
    return {"service": {"name": service, "port": {"name": "http"}}}


def ingress() -> dict[str, Any]:
    # A sub-resource another service serves (`/v1/donors/{id}/statement`) is a regex path: ingress-nginx then
    # reads every path of the host as a regex it anchors itself (a Prefix one as `^/v1/<collection>`), longest
    # first.
    subs = [
        {"path": pattern.removeprefix("^"), "pathType": "ImplementationSpecific", "backend": _backend(service)}
        for service, patterns in sub_resources_by_service().items()
        for pattern in patterns
    ]
    paths = subs + [
        {"path": f"/v1/{collection}", "pathType": "Prefix", "backend": _backend(service)}
        for service, collections in collections_by_service().items()
        for collection in collections
    ]
    paths += [{"path": p, "pathType": "Exact", "backend": _backend(DOCS)} for p in DOCS_PATHS]
    metadata = _metadata("reliefhub", "gateway")
    metadata["annotations"] = {"nginx.ingress.kubernetes.io/proxy-body-size": BODY_LIMIT}
    if subs:
        metadata["annotations"]["nginx.ingress.kubernetes.io/use-regex"] = "true"
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": {"rules": [{"http": {"paths": paths}}]},
    }


def base_files() -> dict[str, list[dict[str, Any]]]:
    """Each file of the Kustomize base (but kustomization.yaml) and its resources."""
    files: dict[str, list[dict[str, Any]]] = {"configmap.yaml": [config_map()], "migrate-job.yaml": [migrate_job()]}
    for name in services():
        files[f"{name}.yaml"] = api_manifests(name)
        files[f"{name}-worker.yaml"] = worker_manifests(name)
    files[f"{DOCS}.yaml"] = docs_manifests()
    files["ingress.yaml"] = [ingress()]
    return files


def base_kustomization() -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(base_files()),
    }


def _replace(path: str, value: object) -> dict[str, Any]:
    return {"op": "replace", "path": path, "value": value}


def production_patches() -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each JSON 6902 patch file of the production overlay: its target and its operations."""
    container = "/spec/template/spec/containers/0/resources"
    return {
        "api-resources.yaml": (
            {"kind": "Deployment", "labelSelector": "app.kubernetes.io/component=api"},
            [_replace(container, _resources("500m", "512Mi", "1", "1Gi"))],
        ),
        "api-autoscaling.yaml": (
            {"kind": "HorizontalPodAutoscaler", "labelSelector": "app.kubernetes.io/component=api"},
            [_replace("/spec/minReplicas", 3), _replace("/spec/maxReplicas", 12)],
        ),
        "worker-resources.yaml": (
            {"kind": "Deployment", "labelSelector": "app.kubernetes.io/component=worker"},
            [_replace(container, _resources("250m", "512Mi", "1", "1Gi"))],
        ),
        "worker-autoscaling.yaml": (
            {"kind": "HorizontalPodAutoscaler", "labelSelector": "app.kubernetes.io/component=worker"},
            [_replace("/spec/minReplicas", 2), _replace("/spec/maxReplicas", 8)],
        ),
        "docs-replicas.yaml": ({"kind": "Deployment", "name": DOCS}, [_replace("/spec/replicas", 2)]),
        "config.yaml": (
            {"kind": "ConfigMap", "name": CONFIG},
            [
                _replace("/data/RELIEFHUB_PUBLIC_BASE_URL", f"https://{PRODUCTION_HOST}"),
                _replace("/data/RELIEFHUB_TRUSTED_PROXIES", json.dumps(PRODUCTION_TRUSTED_PROXIES)),
            ],
        ),
        "ingress.yaml": (
            {"kind": "Ingress", "name": "reliefhub"},
            [
                {"op": "add", "path": "/spec/ingressClassName", "value": "nginx"},
                {"op": "add", "path": "/spec/rules/0/host", "value": PRODUCTION_HOST},
                {
                    "op": "add",
                    "path": "/spec/tls",
                    "value": [{"hosts": [PRODUCTION_HOST], "secretName": "reliefhub-tls"}],
                },
            ],
        ),
    }


def production_namespace() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            # Every pod here meets the restricted Pod Security Standard.
            "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
        },
    }


def production_kustomization() -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": ["namespace.yaml", "../../base"],
        "images": [{"name": IMAGE, "newName": PRODUCTION_IMAGE, "newTag": version("reliefhub")}],
        "patches": [
            {"path": f"patches/{file}", "target": target} for file, (target, _) in production_patches().items()
        ],
    }
