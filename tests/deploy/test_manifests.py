"""deploy/: the Dockerfile, the compose file and the Kubernetes manifests, checked offline.

The Kubernetes manifests are validated against the Kubernetes OpenAPI schemas shipped by the
`kubernetes-validate` package; the compose file with a Compose client's `config` (`docker compose` or
Debian's `docker-compose`, installed by `make promtool`). No container is built or started here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from streams.cli.main import build_parser
from streams.settings import ENV_PREFIX, Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
K8S_MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
COMPOSE_TIMEOUT_S = 60

# The settings' environment variables that the manifests set (streams/settings.py reads them).
REQUIRED_ENV = {
    "PROFILESTREAM_KAFKA_BOOTSTRAP",
    "PROFILESTREAM_METRICS_PORT",
    "PROFILESTREAM_METRICS_BIND",
    "PROFILESTREAM_MODEL_DIR",
    "PROFILESTREAM_STATE_DIR",
    "PROFILESTREAM_PARTITIONS",
}
_ENV_NAME = re.compile(r"\bPROFILESTREAM_[A-Z0-9_]+\b")


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def manifest(kind: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [doc for path in K8S_MANIFESTS if (doc := load_yaml(path))["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def services_by_name() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in (load_yaml(p) for p in K8S_MANIFESTS) if doc["kind"] == "Service"}


def setting_env_names() -> set[str]:
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def compose_client() -> list[str]:
    """The Compose client to run `config` with; fails (never skips) when there is none."""
    docker = shutil.which("docker")
    if docker is not None:
        done = subprocess.run([docker, "compose", "version"], capture_output=True, check=False, timeout=30)
        if done.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is not None:
        return [legacy]
    pytest.fail("no Compose client: run `make promtool` (installs Debian's docker-compose when needed)")


# -- environment names --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [DOCKERFILE, COMPOSE, *K8S_MANIFESTS], ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_profilestream_variable_is_a_setting(path: Path) -> None:
    used = set(_ENV_NAME.findall(path.read_text(encoding="utf-8")))
    assert used - setting_env_names() == set()


def test_the_configmap_sets_the_required_variables() -> None:
    data = manifest("ConfigMap")["data"]
    assert REQUIRED_ENV - set(data) == set()
    assert all(isinstance(value, str) for value in data.values())
    assert data["PROFILESTREAM_METRICS_BIND"] == "0.0.0.0"  # scraped from outside the pod


def test_the_required_variables_are_settings() -> None:
    assert REQUIRED_ENV - setting_env_names() == set()


# -- Dockerfile ---------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1]) for line in lines]


def test_dockerfile_shape() -> None:
    instructions = dockerfile_instructions()
    values = {name: [arg for n, arg in instructions if n == name] for name, _ in instructions}
    assert values["FROM"] == ["python:3.11-slim"]
    assert values["ENTRYPOINT"] == ['["profilestream"]']
    assert values["CMD"] == ['["worker"]']
    assert values["VOLUME"] == ['["/var/lib/profilestream"]']
    user = values["USER"][-1].split(":")[0]
    assert user not in {"0", "root"}
    # The last USER comes after every RUN: nothing runs as root at run time.
    last_run = max(i for i, (name, _) in enumerate(instructions) if name == "RUN")
    last_user = max(i for i, (name, _) in enumerate(instructions) if name == "USER")
    assert last_user > last_run
    env = " ".join(values["ENV"])
    assert "PROFILESTREAM_STATE_DIR=/var/lib/profilestream/state" in env
    assert "PROFILESTREAM_METRICS_BIND=0.0.0.0" in env


def test_dockerfile_ignore_file_keeps_the_context_small() -> None:
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    ignore = [line for line in lines if line and not line.startswith("#")]
    assert ignore[0] == "*"  # everything is excluded first, then only the sources are let back in
    for needed in ("!pyproject.toml", "!streams/", "!models/", "!state/"):
        assert needed in ignore


# -- commands run by the images -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["worker"], ["topics", "create"], ["demo-traffic", "--users", "1000", "--rate", "50"]],
    ids=" ".join,
)
def test_container_commands_exist_in_the_cli(argv: list[str]) -> None:
    build_parser().parse_args(argv)


def test_compose_commands_are_the_checked_ones() -> None:
    services = load_yaml(COMPOSE)["services"]
    assert services["topics"]["command"] == ["topics", "create"]
    assert services["demo-traffic"]["command"] == ["demo-traffic", "--users", "1000", "--rate", "50"]
    assert manifest("StatefulSet")["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker"]


# -- docker compose -----------------------------------------------------------------------------------


def test_compose_file_validates_with_a_compose_client() -> None:
    done = subprocess.run(
        [*compose_client(), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        timeout=COMPOSE_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_client_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  worker:\n    image: x\n    restart: sometimes-maybe\n    ports: 7\n")
    done = subprocess.run(
        [*compose_client(), "-f", str(broken), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        timeout=COMPOSE_TIMEOUT_S,
    )
    assert done.returncode != 0


def test_compose_has_the_whole_deployment() -> None:
    compose = load_yaml(COMPOSE)
    services = compose["services"]
    assert {"kafka", "topics", "worker-1", "worker-2", "prometheus", "demo-traffic"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    for worker in ("worker-1", "worker-2"):
        spec = services[worker]
        assert spec["command"] == ["worker"]
        assert spec["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        assert any(volume.endswith(":/var/lib/profilestream") for volume in spec["volumes"])
    assert "./prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]


def test_compose_publishes_ports_on_the_hosts_loopback_only() -> None:
    # Metrics and the Prometheus UI answer without a login: another machine must not reach them.
    compose = yaml.safe_load(COMPOSE.read_text())
    published = [port for service in compose["services"].values() for port in service.get("ports", [])]
    assert published and all(str(port).startswith("127.0.0.1:") for port in published), published


def test_compose_keeps_the_worker_healthcheck_off_other_sub_commands() -> None:
    # The image's HEALTHCHECK asks the worker's /healthz/ on the web port; no other sub-command serves it, so a
    # container of one would be marked unhealthy (and a dependent service would never start).
    assert "/healthz/" in dict(dockerfile_instructions())["HEALTHCHECK"]
    services = load_yaml(COMPOSE)["services"]
    image = services["worker-1"]["image"]
    for name, spec in services.items():
        if spec.get("image") != image:
            continue
        healthcheck = spec.get("healthcheck", {})
        if spec["command"] == ["worker"]:
            assert not healthcheck.get("disable", False), name
        else:
            assert healthcheck.get("disable") is True or "test" in healthcheck, name


def test_prometheus_scrapes_the_compose_workers_on_their_metrics_port() -> None:
    services = load_yaml(COMPOSE)["services"]
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    expected = [
        f"{name}:{services[name]['environment']['PROFILESTREAM_METRICS_PORT']}" for name in ("worker-1", "worker-2")
    ]
    assert targets == expected


# -- Kubernetes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.29.0", kubernetes_validate.latest_version()])
@pytest.mark.parametrize("path", K8S_MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_against_the_kubernetes_schema(path: Path, version: str) -> None:
    kubernetes_validate.validate(load_yaml(path), version, strict=True)


def test_the_schema_validation_catches_a_misspelled_field() -> None:
    statefulset = manifest("StatefulSet")
    statefulset["spec"]["template"]["spec"]["containers"][0]["envFrm"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, "1.29.0", strict=True)


def test_kustomization_lists_every_manifest() -> None:
    resources = load_yaml(K8S / "kustomization.yaml")["resources"]
    assert sorted(resources) == sorted(p.name for p in K8S_MANIFESTS)


def test_statefulset_wiring() -> None:
    statefulset = manifest("StatefulSet")
    spec = statefulset["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    config = manifest("ConfigMap")
    services = services_by_name()
    pod_labels = spec["template"]["metadata"]["labels"]

    # The governing Service is headless and selects these pods.
    headless = services[spec["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"].items() <= pod_labels.items()
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()

    # Configuration comes from the ConfigMap.
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]

    # RocksDB state lives on the claim template, and the state dir is inside its mount.
    claim = spec["volumeClaimTemplates"][0]["metadata"]["name"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert config["data"]["PROFILESTREAM_STATE_DIR"].startswith(mounts[claim] + "/")

    # The named metrics port is the configured one, and the metrics Service points at it.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(config["data"]["PROFILESTREAM_METRICS_PORT"])
    metrics_service = services["profilestream-metrics"]
    assert metrics_service["spec"]["selector"].items() <= pod_labels.items()
    assert [p["targetPort"] for p in metrics_service["spec"]["ports"]] == ["metrics"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    # Liveness is answered on the worker's event loop, so a wedged loop restarts the pod.
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz/", "port": "web"}
    assert ports["web"] == int(config["data"]["PROFILESTREAM_WEB_PORT"])
    # A lookup is forwarded to the owning pod by its name under the headless Service, in this namespace.
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    names = list(env)
    assert names.index("POD_NAME") < names.index("PROFILESTREAM_WEB_HOST"), "$(POD_NAME) expands only if defined before"
    namespace = statefulset["metadata"]["namespace"]
    assert env["PROFILESTREAM_WEB_HOST"]["value"] == f"$(POD_NAME).{spec['serviceName']}.{namespace}.svc"

    # Runs as the image's non-root user, without a Kubernetes API token it has no use for.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False


def test_pod_disruption_budget_covers_the_workers() -> None:
    pdb = manifest("PodDisruptionBudget")
    pod_labels = manifest("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_kubernetes_prometheus_config_finds_the_headless_service() -> None:
    statefulset = manifest("StatefulSet")
    headless = services_by_name()[statefulset["spec"]["serviceName"]]
    namespace = headless["metadata"]["namespace"]
    port_names = {p["name"] for p in headless["spec"]["ports"]}
    assert "metrics" in port_names
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.k8s.yml")
    names = config["scrape_configs"][0]["dns_sd_configs"][0]["names"]
    assert names == [f"_metrics._tcp.{headless['metadata']['name']}.{namespace}.svc.cluster.local"]
    assert headless["spec"]["publishNotReadyAddresses"] is True  # a failing worker is still scraped


def test_every_namespaced_manifest_uses_one_namespace() -> None:
    namespace = manifest("Namespace")["metadata"]["name"]
    for path in K8S_MANIFESTS:
        doc = load_yaml(path)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, path.name
