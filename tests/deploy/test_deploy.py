"""The deployment files: each committed copy is what `reliefhub deploy render` renders from the route table now;
nginx, the Ingress and the development gateway route the same paths; docker-compose.yml has everything it
should; every Kubernetes manifest, and the production overlay applied to them, validates against the
Kubernetes OpenAPI schemas (kubernetes-validate ships them: no network). No database, Redis or container
engine is needed."""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from typer.testing import CliRunner

from reliefhub import cli, deploy
from reliefhub.gateway import Gateway, docs_app
from reliefhub.registry import route_table, service_of, services, sub_resource_table
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.30"
RENDERED = deploy.render()
NAMES = list(services())
DOCS = deploy.DOCS
# kubernetes-validate reads and parses its (large) schema files on every call; read each once.
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)


def load(path: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((ROOT / path).read_text()) if doc is not None]


@functools.cache
def _base_resources() -> dict[str, list[dict[str, Any]]]:
    return {file: load(f"{deploy.BASE}/{file}") for file in load(f"{deploy.BASE}/kustomization.yaml")[0]["resources"]}


def base_resources() -> dict[str, list[dict[str, Any]]]:
    """The files the base kustomization lists, and their resources (a copy: callers patch them)."""
    return copy.deepcopy(_base_resources())


def validate(resource: dict[str, Any]) -> None:
    kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


# --- (i) The committed files are the rendered ones. ---


@pytest.mark.parametrize("path", sorted(RENDERED))
def test_committed_file_is_as_rendered(path: str) -> None:
    committed = ROOT / path
    assert committed.exists(), f"{path} is missing: run `reliefhub deploy render`"
    assert committed.read_text() == RENDERED[path], (
        f"{path} differs from what reliefhub/deploy/ renders from the route table: run `reliefhub deploy render` "
        "(and change the generator, not the file)"
    )


def test_no_generated_file_is_left_over() -> None:
    assert deploy.stale(ROOT, RENDERED) == []


def test_render_writes_checks_and_removes_stale_files(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli.app, ["deploy", "render", "--root", str(tmp_path)]).exit_code == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == sorted(RENDERED)
    assert runner.invoke(cli.app, ["deploy", "render", "--root", str(tmp_path), "--check"]).exit_code == 0

    (tmp_path / deploy.NGINX_CONF).write_text("# edited by hand\n")
    old = tmp_path / deploy.BASE / "retired-worker.yaml"
    old.write_text(f"# {deploy.GENERATED}\nkind: Deployment\n")
    mine = tmp_path / deploy.BASE / "hand-written.yaml"
    mine.write_text("kind: ConfigMap\n")
    result = runner.invoke(cli.app, ["deploy", "render", "--root", str(tmp_path), "--check"])
    assert result.exit_code == 1
    assert "nginx.conf" in result.output and "retired-worker.yaml" in result.output

    assert runner.invoke(cli.app, ["deploy", "render", "--root", str(tmp_path)]).exit_code == 0
    assert (tmp_path / deploy.NGINX_CONF).read_text() == RENDERED[deploy.NGINX_CONF]
    assert not old.exists() and mine.exists()  # only files it generated are removed


def resolve(node: Any) -> Any:
    """The value PyYAML should read back: anchors and aliases expanded, merge keys merged."""
    anchors: dict[str, Any] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, deploy.Anchor):
            anchors[value.name] = walk(value.value)
            return anchors[value.name]
        if isinstance(value, deploy.Alias):
            return copy.deepcopy(anchors[value.name])
        if isinstance(value, dict):
            merged = walk(value["<<"]) if "<<" in value else {}
            return merged | {k: walk(v) for k, v in value.items() if k != "<<"}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(node)


def test_yaml_reads_back_as_rendered() -> None:
    assert yaml.safe_load(RENDERED[deploy.COMPOSE]) == resolve(deploy.compose())
    for file, resources in deploy.base_files().items():
        assert list(yaml.safe_load_all(RENDERED[f"{deploy.BASE}/{file}"])) == resources
    tricky = ["yes", "No", "on", "null", "~", "", "8000:80", "0.1.0", "12", "1e3", "-q", "*", "#x", "a: b", "x #y"]
    tricky += ["it's", 'say "hi"', "line\nbreak", "tab\there", "口罩", "{}", "[a]", "&a", "!tag", "%x", "@x", "`x`"]
    value = {"strings": tricky, "nested": [{"k": tricky}, [1, True, None]], "yes": False, "8080:80": 0}
    assert yaml.safe_load(deploy.to_yaml(value)) == value


# --- (ii) nginx, the Ingress and the development gateway route the same paths. ---

PROXY = r" \{\s*proxy_pass http://([a-z0-9-]+);\s*\}"
NGINX_ROUTE = re.compile(r"location ~ (\^/v1/\(([a-z0-9|-]+)\)\(/\|\$\))" + PROXY)
NGINX_EXACT = re.compile(r"location = (/\S+)" + PROXY)
NGINX_SUB = re.compile(r"location ~ (\^/v1/([a-z0-9-]+)/\[\^/\]\+/([a-z0-9-]+)\(/\|\\\.\|\$\))" + PROXY)
NGINX_UPSTREAM = re.compile(r"upstream ([a-z0-9-]+) \{([^}]*)\}")


def nginx_upstreams(text: str) -> dict[str, list[str]]:
    """Each upstream block: its name and its directives."""
    return {name: [line.strip() for line in body.strip().splitlines()] for name, body in NGINX_UPSTREAM.findall(text)}


def nginx_routes() -> tuple[dict[str, str], dict[str, str]]:
    """Collection → upstream, exact path → upstream; every upstream a block of the service's own name."""
    text = (ROOT / deploy.NGINX_CONF).read_text()
    upstreams = nginx_upstreams(text)
    routes: dict[str, str] = {}
    for match in NGINX_ROUTE.finditer(text):
        pattern, alternatives, upstream = match.groups()
        assert upstream in upstreams
        for collection in alternatives.split("|"):
            # The location matches the collection as a whole path segment, nothing longer.
            assert re.match(pattern, f"/v1/{collection}") and re.match(pattern, f"/v1/{collection}/x?y=1")
            assert not re.match(pattern, f"/v1/{collection}x") and not re.match(pattern, f"/v2/{collection}")
            assert collection not in routes
            routes[collection] = upstream
    return routes, dict(NGINX_EXACT.findall(text))


def nginx_sub_resources() -> dict[tuple[str, str], str]:
    """(collection, name) → upstream of each sub-resource location, each before every collection's location."""
    text = (ROOT / deploy.NGINX_CONF).read_text()
    first_collection = NGINX_ROUTE.search(text)
    assert first_collection is not None
    subs: dict[tuple[str, str], str] = {}
    for match in NGINX_SUB.finditer(text):
        pattern, collection, name, upstream = match.groups()
        assert match.start() < first_collection.start()  # nginx tries regex locations in order
        for path in (f"/v1/{collection}/1/{name}", f"/v1/{collection}/x/{name}.html", f"/v1/{collection}/1/{name}/y"):
            assert re.match(pattern, path), path
        for path in (f"/v1/{collection}/1/{name}x", f"/v1/{collection}/{name}", f"/v1/{collection}/1/2/{name}"):
            assert not re.match(pattern, path), path
        subs[collection, name] = upstream
    return subs


def ingress_routes() -> tuple[dict[str, str], dict[str, str]]:
    (ingress,) = load(f"{deploy.BASE}/ingress.yaml")
    (rule,) = ingress["spec"]["rules"]
    routes: dict[str, str] = {}
    exact: dict[str, str] = {}
    for path in rule["http"]["paths"]:
        backend = path["backend"]["service"]
        assert backend["port"] == {"name": "http"}
        if path["pathType"] == "ImplementationSpecific":  # a sub-resource's regex (ingress_sub_resources)
            continue
        if path["path"].startswith("/v1/"):
            assert path["pathType"] == "Prefix"  # element-wise: /v1/needs and /v1/needs/…, never /v1/needsx
            collection = path["path"].removeprefix("/v1/")
            assert "/" not in collection and collection not in routes
            routes[collection] = backend["name"]
        else:
            assert path["pathType"] == "Exact"
            exact[path["path"]] = backend["name"]
    return routes, exact


def ingress_sub_resources() -> dict[tuple[str, str], str]:
    """(collection, name) → service of each regex path, with ingress-nginx reading every path as a regex."""
    (ingress,) = load(f"{deploy.BASE}/ingress.yaml")
    (rule,) = ingress["spec"]["rules"]
    subs: dict[tuple[str, str], str] = {}
    for path in rule["http"]["paths"]:
        if path["pathType"] != "ImplementationSpecific":
            continue
        match = re.fullmatch(r"/v1/([a-z0-9-]+)/\[\^/\]\+/([a-z0-9-]+)\(/\|\\\.\|\$\)", path["path"])
        assert match is not None, path["path"]
        subs[match.group(1), match.group(2)] = path["backend"]["service"]["name"]
    if subs:
        assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/use-regex"] == "true"
    return subs


@pytest.fixture(scope="module")
def dev_gateway() -> Gateway:
    """The development gateway, its service apps built but not started (no database or Redis)."""
    return Gateway(Settings(environment="test", jwt_secret="t" * 40))


def test_nginx_ingress_and_gateway_route_the_same_paths(dev_gateway: Gateway) -> None:
    nginx, nginx_exact = nginx_routes()
    ingress, ingress_exact = ingress_routes()
    assert nginx == ingress == dev_gateway.routes == route_table()
    assert nginx_sub_resources() == ingress_sub_resources() == dev_gateway.sub_resources == sub_resource_table()
    for (collection, _), service in sub_resource_table().items():
        assert route_table()[collection] != service  # another service's collection
    assert set(nginx.values()) == set(NAMES)
    assert nginx_exact == ingress_exact == dict.fromkeys(deploy.DOCS_PATHS, DOCS)
    assert {"/openapi.json", "/docs", "/redoc", "/docs/assets/swagger-ui-bundle.js"} <= set(nginx_exact)
    text = (ROOT / deploy.NGINX_CONF).read_text()
    assert re.search(r"location = /healthz \{\s*default_type application/json;\s*return 200", text)
    assert "location / {" in text and "return 404" in text  # /metrics, /readyz and the rest stay inside
    assert "/metrics" not in "".join(nginx) + "".join(nginx_exact)


def test_nginx_keeps_connections_to_each_upstream_and_re_resolves_compose_names() -> None:
    text = (ROOT / deploy.NGINX_CONF).read_text()
    upstreams = nginx_upstreams(text)
    assert set(upstreams) == {*NAMES, DOCS}
    for name, directives in upstreams.items():
        # Docker's DNS is asked again (scaled or restarted containers): `resolve` needs a shared zone.
        assert f"server {name}:8000 resolve;" in directives and f"zone {name} 64k;" in directives
        assert f"keepalive {deploy.UPSTREAM_KEEPALIVE};" in directives
        assert "keepalive_timeout 4s;" in directives  # below uvicorn's 5 s keep-alive
    assert "resolver 127.0.0.11 valid=10s ipv6=off;" in text
    # Keep-alive needs HTTP/1.1 upstream and no Connection header passed on; nothing is proxied by variable
    # (that would bypass the upstream blocks and their connection pools).
    assert "proxy_http_version 1.1;" in text and 'proxy_set_header Connection "";' in text
    assert "set $" not in text and not re.search(r"proxy_pass (?!http://[a-z0-9-]+;)", text)
    # The client's own X-Forwarded-For is replaced, never passed on: the services trust what this sets.
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in text and "$proxy_add_x_forwarded_for" not in text


def test_nginx_answers_its_own_502_503_504_with_a_problem_and_retry_after() -> None:
    text = (ROOT / deploy.NGINX_CONF).read_text()
    assert "error_page 502 503 504 = @unavailable;" in text
    block = re.search(r"location @unavailable \{(.*?)\n        \}", text, re.DOTALL)
    assert block is not None
    body = block.group(1)
    assert "default_type application/problem+json;" in body
    assert f"add_header Retry-After {deploy.RETRY_AFTER} always;" in body  # `always`: on error statuses too
    problem = json.loads(re.search(r"return 503 '(.*)';", body).group(1))  # type: ignore[union-attr]
    assert problem["status"] == 503 and problem["title"] == "Service Unavailable"
    assert "proxy_intercept_errors" not in text  # a service's own 503 (with its Retry-After) passes through


def test_a_gateway_for_processes_on_known_addresses_has_the_same_routes() -> None:
    urls = {name: f"http://10.0.0.5:{8001 + i}" for i, name in enumerate(NAMES)}
    servers = deploy.host_servers(urls, "10.0.0.5:8010")
    assert servers == {**{n: u.removeprefix("http://") for n, u in urls.items()}, DOCS: "10.0.0.5:8010"}
    text = deploy.nginx_conf(servers, listen="127.0.0.1:9000", resolve=False)
    upstreams = nginx_upstreams(text)
    assert {n: [d for d in ds if d.startswith("server ")] for n, ds in upstreams.items()} == {
        n: [f"server {a};"] for n, a in servers.items()
    }
    assert "resolver" not in text and "listen 127.0.0.1:9000;" in text

    def routes(conf: str) -> str:
        return re.sub(r"listen [^;]*;", "", conf[conf.index("    server {") :])

    assert routes(text) == routes(RENDERED[deploy.NGINX_CONF])
    for bad in ({**urls, "supply": "https://10.0.0.5:8002"}, {**urls, "needs": "http://x/prefix"}):
        with pytest.raises(ValueError, match="is not http://host:port"):
            deploy.host_servers(bad, "d:1")
    with pytest.raises(ValueError, match="no URL for matching"):
        deploy.host_servers({n: u for n, u in urls.items() if n != "matching"}, "d:1")


async def test_every_documented_path_reaches_its_service_and_docs_app_merges_them(dev_gateway: Gateway) -> None:
    nginx, _ = nginx_routes()
    paths: set[str] = set()
    for name, app in dev_gateway.apps.items():
        for path in app.openapi()["paths"]:
            if path.startswith("/v1/"):
                assert service_of(path) == name, f"{path} of {name} is routed elsewhere or nowhere"
                if service_of(path) != nginx.get(path.split("/")[2]):
                    assert sub_resource_table()[path.split("/")[2], path.split("/")[4].split(".")[0]] == name
                paths.add(path)
    assert paths

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=docs_app(dev_gateway.apps)), base_url="http://d"
    ) as client:
        assert set((await client.get("/openapi.json")).json()["paths"]) == paths
        assert (await client.get("/docs")).headers["content-type"].startswith("text/html")
        assert (await client.get("/healthz")).json()["status"] == "ok"


# --- (iii) docker-compose.yml. ---


def test_compose_runs_every_service_and_worker_behind_the_gateway() -> None:
    compose = yaml.safe_load((ROOT / deploy.COMPOSE).read_text())
    svcs = compose["services"]
    assert set(svcs) == {"db", "redis", "migrate", "gateway", DOCS, *NAMES, *(f"{n}-worker" for n in NAMES)}

    assert svcs["db"]["image"] == "postgres:16" and "pg_isready" in " ".join(svcs["db"]["healthcheck"]["test"])
    assert svcs["redis"]["image"] == "redis:7" and svcs["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    assert svcs["migrate"]["command"] == ["migrate"] and svcs["migrate"]["restart"] == "no"
    assert svcs["migrate"]["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }

    env = compose["x-env"]
    assert json.loads(env["RELIEFHUB_SERVICE_URLS"]) == {n: f"http://{n}:8000" for n in NAMES}
    assert {"DATABASE_URL", "REDIS_URL", "RELIEFHUB_JWT_SECRET", "RELIEFHUB_ENVIRONMENT"} <= set(env)
    after_migrate = {"migrate": {"condition": "service_completed_successfully"}}
    for name in NAMES:
        for service, command in ((svcs[name], ["serve", name]), (svcs[f"{name}-worker"], ["worker", name])):
            assert service["command"] == command
            assert service["environment"] == env
            assert service["depends_on"] == after_migrate
            assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert "/readyz" in " ".join(svcs[name]["healthcheck"]["test"])
        assert "ports" not in svcs[name]  # reached through the gateway only (and free to scale)

    gateway = svcs["gateway"]
    assert gateway["image"].startswith("nginx:") and gateway["ports"] == ["${RELIEFHUB_PORT:-8000}:8000"]
    assert f"./{deploy.NGINX_CONF}:/etc/nginx/nginx.conf:ro" in gateway["volumes"]
    nginx, nginx_exact = nginx_routes()
    assert set(nginx.values()) | set(nginx_exact.values()) <= set(gateway["depends_on"]) <= set(svcs)


def test_compose_services_trust_only_their_gateway_and_keep_docs_and_metrics_off_the_api_port() -> None:
    compose = yaml.safe_load((ROOT / deploy.COMPOSE).read_text())
    svcs, env = compose["services"], compose["x-env"]
    assert "FORWARDED_ALLOW_IPS" not in env
    (ipam,) = compose["networks"]["default"]["ipam"]["config"]
    subnet, dynamic = ipaddress.ip_network(ipam["subnet"]), ipaddress.ip_network(ipam["ip_range"])
    gateway = ipaddress.ip_address(svcs["gateway"]["networks"]["default"]["ipv4_address"])
    # The gateway's fixed address is on the network but outside the range Docker hands out to other containers.
    assert gateway in subnet and dynamic.subnet_of(subnet) and gateway not in dynamic  # type: ignore[arg-type]
    assert json.loads(env["RELIEFHUB_TRUSTED_PROXIES"]) == [str(gateway)]
    assert all("networks" not in s for n, s in svcs.items() if n != "gateway")
    trusted = Settings(
        environment="test", jwt_secret="t" * 40, trusted_proxies=json.loads(env["RELIEFHUB_TRUSTED_PROXIES"])
    )
    assert trusted.trusted_proxies == [f"{gateway}/32"]

    assert env["RELIEFHUB_EXPOSE_DOCS"] == "false"
    assert env["RELIEFHUB_METRICS_PORT"] == env["RELIEFHUB_WORKER_METRICS_PORT"] == str(deploy.METRICS_PORT)
    for name in [*NAMES, *(f"{n}-worker" for n in NAMES)]:
        assert svcs[name]["expose"] == [str(deploy.METRICS_PORT)], name  # scraped inside, published nowhere
    assert {"--no-proxy-headers", "--no-server-header"} <= set(svcs[DOCS]["command"])


# --- (iv) Kubernetes. ---

MANIFESTS = sorted(
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / deploy.K8S).rglob("*.yaml")
    if p.name != "kustomization.yaml" and p.parent.name != "patches"
)


@pytest.mark.parametrize("path", MANIFESTS)
def test_manifest_validates_against_the_kubernetes_schemas(path: str) -> None:
    resources = load(path)
    assert resources
    for resource in resources:
        validate(resource)


def test_the_schemas_catch_a_misspelt_field_and_an_unknown_kind() -> None:
    deployment = copy.deepcopy(base_resources()["needs.yaml"][0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.utils.ValidationError):
        validate(deployment)
    with pytest.raises(kubernetes_validate.utils.SchemaNotFoundError):
        validate({**deployment, "apiVersion": "apps/v1beta9"})


def by_kind(resources: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["kind"], r["metadata"]["name"]): r for r in resources}


def test_base_has_a_deployment_per_service_and_worker_with_probes_config_and_a_non_root_user() -> None:
    files = base_resources()
    listed = set(files)
    on_disk = {p.name for p in (ROOT / deploy.BASE).glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"secret.example.yaml"}  # the example Secret is not applied
    resources = by_kind([r for rs in files.values() for r in rs])

    for name in NAMES:
        for deployment_name, component in ((name, "api"), (f"{name}-worker", "worker")):
            deployment = resources["Deployment", deployment_name]
            pod = deployment["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            assert container["args"][1] == name
            assert container["envFrom"] == [
                {"configMapRef": {"name": "reliefhub-config"}},
                {"secretRef": {"name": "reliefhub-secrets"}},
            ]
            assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert {"requests", "limits"} <= set(container["resources"])
            hpa = resources["HorizontalPodAutoscaler", deployment_name]
            assert hpa["spec"]["scaleTargetRef"] == {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment_name,
            }
            assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
            selector = deployment["spec"]["selector"]["matchLabels"]
            assert resources["PodDisruptionBudget", deployment_name]["spec"]["selector"]["matchLabels"] == selector
            assert deployment["spec"]["template"]["metadata"]["labels"] == selector
            assert selector["app.kubernetes.io/component"] == component

        api = resources["Deployment", name]["spec"]["template"]["spec"]["containers"][0]
        assert api["args"] == ["serve", name]
        assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert (
            resources["Service", name]["spec"]["selector"]
            == resources["Deployment", name]["spec"]["selector"]["matchLabels"]
        )
        worker = resources["Deployment", f"{name}-worker"]["spec"]["template"]["spec"]["containers"][0]
        assert worker["args"] == ["worker", name] and "livenessProbe" not in worker
        assert ("Service", f"{name}-worker") not in resources

        for deployment_name in (name, f"{name}-worker"):
            template = resources["Deployment", deployment_name]["spec"]["template"]
            (container,) = template["spec"]["containers"]
            assert {"name": "metrics", "containerPort": deploy.METRICS_PORT, "protocol": "TCP"} in container["ports"]
            assert template["metadata"]["annotations"] == {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(deploy.METRICS_PORT),
                "prometheus.io/path": "/metrics",
            }
        # The Service (so the Ingress) reaches the API port only; Prometheus scrapes the pods' metrics port.
        assert [p["name"] for p in resources["Service", name]["spec"]["ports"]] == ["http"]

    job = resources["Job", "reliefhub-migrate"]["spec"]["template"]["spec"]
    assert job["containers"][0]["args"] == ["migrate"] and job["restartPolicy"] == "Never"
    config = resources["ConfigMap", "reliefhub-config"]["data"]
    assert json.loads(config["RELIEFHUB_SERVICE_URLS"]) == {n: f"http://{n}:8000" for n in NAMES}
    assert "FORWARDED_ALLOW_IPS" not in config and config["RELIEFHUB_TRUSTED_PROXIES"] == "[]"
    assert config["RELIEFHUB_EXPOSE_DOCS"] == "false"
    assert config["RELIEFHUB_METRICS_PORT"] == config["RELIEFHUB_WORKER_METRICS_PORT"] == str(deploy.METRICS_PORT)
    docs_args = set(resources["Deployment", DOCS]["spec"]["template"]["spec"]["containers"][0]["args"])
    assert {"--no-proxy-headers", "--no-server-header"} <= docs_args
    services_ = {name for kind, name in resources if kind == "Service"}
    for path in resources["Ingress", "reliefhub"]["spec"]["rules"][0]["http"]["paths"]:
        assert path["backend"]["service"]["name"] in services_


def select(target: dict[str, str], resource: dict[str, Any]) -> bool:
    if (
        resource["kind"] != target["kind"]
        or target.get("name", resource["metadata"]["name"]) != resource["metadata"]["name"]
    ):
        return False
    labels = resource["metadata"].get("labels", {})
    return all(labels.get(k) == v for k, v in (p.split("=") for p in target.get("labelSelector", "").split(",") if p))


def apply_json_patch(resource: dict[str, Any], operation: dict[str, Any]) -> None:
    *parents, last = (p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:])
    node: Any = resource
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if operation["op"] == "replace":
        assert (key < len(node)) if isinstance(node, list) else (key in node), (
            f"nothing to replace at {operation['path']}"
        )
        node[key] = operation["value"]
    elif operation["op"] == "add":
        if isinstance(node, list):
            node.insert(key, operation["value"])
        else:
            node[key] = operation["value"]
    else:
        raise AssertionError(f"unexpected op {operation['op']}")


def build_production() -> list[dict[str, Any]]:
    """What `kubectl kustomize deploy/k8s/overlays/production` does with this overlay, for the fields it uses."""
    overlay = ROOT / deploy.PRODUCTION
    (kustomization,) = load(f"{deploy.PRODUCTION}/kustomization.yaml")
    assert set(kustomization) <= {"apiVersion", "kind", "namespace", "resources", "images", "patches"}
    resources: list[dict[str, Any]] = []
    for entry in kustomization["resources"]:
        path = (overlay / entry).resolve()
        assert path.exists(), f"{entry} in the production kustomization does not exist"
        if path.is_dir():
            assert (path / "kustomization.yaml").is_file()
            resources += [r for rs in base_resources().values() for r in rs]
        else:
            resources += load(path.relative_to(ROOT).as_posix())
    for patch in kustomization["patches"]:
        path = overlay / patch["path"]
        assert path.is_file(), f"{patch['path']} in the production kustomization does not exist"
        targets = [r for r in resources if select(patch["target"], r)]
        assert targets, f"{patch['path']} patches nothing"
        for resource in targets:
            operations: list[dict[str, Any]] = yaml.safe_load(path.read_text())
            for operation in operations:
                apply_json_patch(resource, operation)
    images = {image["name"]: f"{image['newName']}:{image['newTag']}" for image in kustomization["images"]}
    for resource in resources:
        if resource["kind"] != "Namespace":
            resource["metadata"]["namespace"] = kustomization["namespace"]
        pod = resource.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            assert container["image"] in images, f"{container['image']} is not retagged by the overlay"
            container["image"] = images[container["image"]]
    return resources


def test_production_overlay_references_exist_and_its_output_validates() -> None:
    resources = build_production()
    for resource in resources:
        validate(resource)
    found = by_kind(resources)
    (namespace,) = [name for kind, name in found if kind == "Namespace"]
    assert all(r["metadata"].get("namespace", namespace) == namespace for r in resources)
    for name in NAMES:
        base_api = by_kind(base_resources()[f"{name}.yaml"])
        assert (
            found["HorizontalPodAutoscaler", name]["spec"]["minReplicas"]
            > base_api["HorizontalPodAutoscaler", name]["spec"]["minReplicas"]
        )
        assert (
            found["Deployment", name]["spec"]["template"]["spec"]["containers"][0]["resources"]
            != base_api["Deployment", name]["spec"]["template"]["spec"]["containers"][0]["resources"]
        )
        image = found["Deployment", f"{name}-worker"]["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image.endswith(":" + load(f"{deploy.PRODUCTION}/kustomization.yaml")[0]["images"][0]["newTag"])
    ingress = found["Ingress", "reliefhub"]
    assert ingress["spec"]["rules"][0]["host"]
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    assert not [p for p in paths if not p["path"].startswith("/v1/") and p["path"] not in deploy.DOCS_PATHS]
    assert {p["backend"]["service"]["port"]["name"] for p in paths} == {"http"}
    # The services trust the ingress controller's network, as a list of valid networks.
    trusted = json.loads(found["ConfigMap", "reliefhub-config"]["data"]["RELIEFHUB_TRUSTED_PROXIES"])
    assert trusted == deploy.PRODUCTION_TRUSTED_PROXIES and trusted
    assert Settings(environment="test", jwt_secret="t" * 40, trusted_proxies=trusted).trusted_proxies == trusted


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed")
def test_kubectl_kustomize_builds_the_production_overlay_as_the_test_does() -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / deploy.PRODUCTION)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    built = [doc for doc in yaml.safe_load_all(out) if doc]
    for resource in built:
        validate(resource)
    assert by_kind(built) == by_kind(build_production())


# --- The image. ---


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "deploy/Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split()[0].upper(), line.partition(" ")[2].strip()) for line in lines if line and line[0] != "#"]


def test_dockerfile_builds_in_one_stage_and_runs_in_a_slim_non_root_one() -> None:
    instructions = dockerfile_instructions()
    stages = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    assert len(stages) == 2
    builder, runtime = instructions[stages[0] : stages[1]], instructions[stages[1] :]
    assert any(op == "RUN" and "build-essential" in arg for op, arg in builder)
    assert any(op == "RUN" and "pip install" in arg and "--no-deps ." in arg for op, arg in builder)
    for op, arg in builder:
        if op == "COPY":
            *sources, _ = arg.split()
            assert all((ROOT / s).exists() for s in sources), arg
    assert not any(op == "RUN" and re.search(r"apt-get|gcc|build-essential|pip ", arg) for op, arg in runtime)
    assert [arg for op, arg in runtime if op == "COPY"] == ["--from=builder /opt/venv /opt/venv"]
    (user,) = [arg for op, arg in runtime if op == "USER"]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) == deploy.UID != 0
    assert ("EXPOSE", "8000") in runtime
    assert ("ENTRYPOINT", '["reliefhub"]') in runtime and ("CMD", '["serve", "needs"]') in runtime
