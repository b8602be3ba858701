"""Static checks of deploy/: compose, Kubernetes (Strimzi) manifests, Dockerfile, dashboard.

They keep the deployment in line with the contract (section 4 topics, section 5 environment,
section 6 HTTP) without a Docker engine or a cluster: YAML/JSON parsing only.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# CONTRACT.md section 4: topic -> cleanup policy.
CONTRACT_TOPICS = {
    "securities": "compact",
    "households": "compact",
    "prices": "compact",  # prices are state (CONTRACT.md section 4)
    "fills": "delete",
    "cash-flows": "delete",
    "orders": "delete",
    "drift-alerts": "delete",
    "dead-letters": "delete",
}

# The variables `umh worker` reads (CONTRACT.md section 5 plus Kafka security settings).
REQUIRED_ENV = {
    "UMH_BROKER",
    "UMH_TOPIC_PREFIX",
    "UMH_APP_ID",
    "UMH_ORDER_TTL_S",
    "UMH_WEB_HOST",
    "UMH_WEB_ADVERTISED_HOST",
    "UMH_WEB_PORT",
    "UMH_API_TOKEN",
    "UMH_PARTITIONS",
    "UMH_KAFKA_SECURITY_PROTOCOL",
    "UMH_KAFKA_SASL_MECHANISM",
    "UMH_KAFKA_SASL_USERNAME",
    "UMH_KAFKA_SASL_PASSWORD",
    "UMH_KAFKA_SSL_CAFILE",
    "UMH_KAFKA_SSL_CERTFILE",
    "UMH_KAFKA_SSL_KEYFILE",
}

METRICS = [
    "umh_events_total",
    "umh_consumer_lag",
    "umh_solves_total",
    "umh_solve_seconds",
    "umh_tick_to_order_seconds",
    "umh_households_out_of_band",
    "umh_dead_letters_total",
]


def _documented_env() -> set[str]:
    """The variables listed in deploy/README.md's table (one `| `UMH_X` | ... |` row each)."""
    text = (DEPLOY / "README.md").read_text()
    return set(re.findall(r"^\|\s*`(UMH_[A-Z0-9_]+)`\s*\|", text, flags=re.MULTILINE))


ALLOWED_ENV = _documented_env()


def _k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


K8S = _k8s_docs()


def _kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in K8S if d.get("kind") == kind]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...]
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _worker_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose["services"].items()
        if any(k.startswith("UMH_") for k in _compose_env(svc))
    }


def _deployment() -> dict[str, Any]:
    deployments = _kind("Deployment")
    assert len(deployments) == 1, [d["metadata"]["name"] for d in deployments]
    return deployments[0]


def _worker_container() -> dict[str, Any]:
    containers = _deployment()["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _deployment_env() -> dict[str, str | None]:
    """Every variable the worker container gets: env entries plus envFrom ConfigMaps/Secrets."""
    container = _worker_container()
    env: dict[str, str | None] = {}
    maps = {d["metadata"]["name"]: d for d in _kind("ConfigMap")}
    secrets = {d["metadata"]["name"]: d for d in _kind("Secret")}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            data = maps[source["configMapRef"]["name"]].get("data", {})
        else:
            secret = secrets[source["secretRef"]["name"]]
            data = {**secret.get("data", {}), **secret.get("stringData", {})}
        env.update({str(k): str(v) for k, v in data.items()})
    for item in container.get("env", []):
        env[item["name"]] = item.get("value")
    return env


# --------------------------------------------------------------------------------------------


def test_readme_documents_every_required_variable() -> None:
    assert REQUIRED_ENV <= ALLOWED_ENV, REQUIRED_ENV - ALLOWED_ENV


def test_every_contract_topic_has_a_kafka_topic() -> None:
    topics = {t["spec"].get("topicName", t["metadata"]["name"]): t for t in _kind("KafkaTopic")}
    assert set(CONTRACT_TOPICS) <= set(topics), set(CONTRACT_TOPICS) - set(topics)
    for name, policy in CONTRACT_TOPICS.items():
        spec = topics[name]["spec"]
        config = spec.get("config", {})
        assert config.get("cleanup.policy", "delete") == policy, name
        assert spec["replicas"] == 3, name
        assert int(config.get("min.insync.replicas", 0)) == 2, name
        assert spec["partitions"] >= 1, name
        assert topics[name]["metadata"]["labels"]["strimzi.io/cluster"] == "umh-kafka"


def test_the_table_changelog_is_declared_before_any_worker_starts() -> None:
    """Created by the first worker only as it starts, the changelog is missing from the
    group's metadata at the first assignments: no table partition assigned for minutes."""
    from streams.kafka.topics import changelog_topic
    from streams.settings import Settings

    env = _deployment_env()
    name = changelog_topic(Settings(app_id=env["UMH_APP_ID"], topic_prefix=""))
    topics = {t["spec"].get("topicName", t["metadata"]["name"]): t for t in _kind("KafkaTopic")}
    assert name in topics, sorted(topics)
    config = topics[name]["spec"]["config"]
    assert config["cleanup.policy"] == "compact" and config["min.insync.replicas"] == 2


def test_topic_partitions_match_worker_partitions() -> None:
    env = _deployment_env()
    partitions = {t["spec"]["partitions"] for t in _kind("KafkaTopic")}
    assert partitions == {int(env["UMH_PARTITIONS"] or 0)}


def test_strimzi_cluster_is_kraft_with_three_nodes() -> None:
    (kafka,) = _kind("Kafka")
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
    assert str(kafka["spec"]["kafka"]["version"]).startswith("3.9.")
    config = kafka["spec"]["kafka"]["config"]
    assert int(config["default.replication.factor"]) == 3
    assert int(config["min.insync.replicas"]) == 2
    assert int(config["offsets.topic.replication.factor"]) == 3
    assert "zookeeper" not in kafka["spec"]
    pools = [p for p in _kind("KafkaNodePool") if p["metadata"]["labels"]["strimzi.io/cluster"]]
    assert sum(p["spec"]["replicas"] for p in pools) == 3
    assert all(set(p["spec"]["roles"]) == {"broker", "controller"} for p in pools)


def test_worker_deployment_env_is_known() -> None:
    env = _deployment_env()
    unknown = set(env) - ALLOWED_ENV
    assert not unknown, f"not in deploy/README.md: {sorted(unknown)}"
    assert env["UMH_BROKER"] and env["UMH_BROKER"].startswith("kafka://")
    assert env["UMH_WEB_HOST"] == "0.0.0.0"


def test_worker_advertises_its_pod_ip() -> None:
    """Bound on 0.0.0.0, a worker must advertise an address its peers can forward to."""
    (item,) = [e for e in _worker_container()["env"] if e["name"] == "UMH_WEB_ADVERTISED_HOST"]
    assert item["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_worker_secrets_come_from_a_secret() -> None:
    container = _worker_container()
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert {"UMH_API_TOKEN", "UMH_KAFKA_SASL_PASSWORD"} <= set(from_secret)
    secrets = {d["metadata"]["name"] for d in _kind("Secret")}
    assert set(from_secret.values()) <= secrets
    for cm in _kind("ConfigMap"):
        assert not {"UMH_API_TOKEN", "UMH_KAFKA_SASL_PASSWORD"} & set(cm.get("data", {}))


def _port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    raise AssertionError(f"named port {port!r} not declared")


def test_worker_deployment_probes_and_service_use_the_web_port() -> None:
    deployment = _deployment()
    assert deployment["spec"]["replicas"] == 2
    container = _worker_container()
    web_port = int(_deployment_env()["UMH_WEB_PORT"] or 0)
    assert web_port == 6066
    ready = container["readinessProbe"]["httpGet"]
    assert ready["path"] == "/healthz"
    assert _port(container, ready["port"]) == web_port
    live = container["livenessProbe"]["httpGet"]
    assert _port(container, live["port"]) == web_port
    assert container["resources"]["requests"] and container["resources"]["limits"]
    pod_security = deployment["spec"]["template"]["spec"].get("securityContext", {})
    assert pod_security.get("runAsNonRoot") is True
    (service,) = _kind("Service")
    (svc_port,) = service["spec"]["ports"]
    assert svc_port["port"] == 6066
    assert _port(container, svc_port["targetPort"]) == web_port
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_compose_has_three_kraft_brokers_and_two_workers() -> None:
    compose = _compose()
    services = compose["services"]
    brokers = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("apache/")}
    assert len(brokers) == 3
    for svc in brokers.values():
        assert re.fullmatch(r"apache/kafka:3\.9\.\d+", svc["image"])
        env = _compose_env(svc)
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert len(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == 3
    workers = _worker_services(compose)
    assert len(workers) == 2
    host_ports = set()
    for name, svc in workers.items():
        env = _compose_env(svc)
        unknown = set(env) - ALLOWED_ENV
        assert not unknown, f"{name}: not in deploy/README.md: {sorted(unknown)}"
        brokers_in_env = env["UMH_BROKER"].removeprefix("kafka://").split(",")
        assert {b.split(":")[0] for b in brokers_in_env} == set(brokers), name
        web_port = int(env["UMH_WEB_PORT"])
        assert web_port == 6066
        # peers forward console requests to the service's name, not to 0.0.0.0
        assert env["UMH_WEB_ADVERTISED_HOST"] in (name, svc.get("hostname")), name
        (mapping,) = svc["ports"]
        host, container = str(mapping).rsplit(":", 1)
        assert int(container) == web_port, name
        host_ports.add(int(host.rsplit(":", 1)[-1]))
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
    assert host_ports == {6066, 6067}


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _exec_form(value: str) -> list[str]:
    return json.loads(value) if value.startswith("[") else shlex.split(value)


def test_dockerfile_runs_umh_worker_as_non_root() -> None:
    instructions = _dockerfile_instructions()
    froms = [v for k, v in instructions if k == "FROM"]
    assert froms and froms[-1].split()[0] == "python:3.11-slim"
    entry = [_exec_form(v) for k, v in instructions if k == "ENTRYPOINT"]
    cmd = [_exec_form(v) for k, v in instructions if k == "CMD"]
    argv = (entry[-1] if entry else []) + (cmd[-1] if cmd else [])
    assert argv[:2] == ["umh", "worker"], argv
    users = [v for k, v in instructions if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(k == "EXPOSE" and "6066" in v.split() for k, v in instructions)
    assert any(k == "RUN" and "pip install" in v for k, v in instructions)


def test_grafana_dashboard_covers_the_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "umh-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    text = "\n".join(exprs)
    for metric in METRICS:
        assert metric in text, metric
    assert "umh_events_total" in text and "by (topic)" in text
    assert re.search(r"histogram_quantile\(0\.5, .*umh_solve_seconds_bucket", text)
    assert re.search(r"histogram_quantile\(0\.99, .*umh_solve_seconds_bucket", text)
    assert re.search(r"histogram_quantile\(0\.99, .*umh_tick_to_order_seconds_bucket", text)
    assert "by (status)" in text
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_kafka_test_scripts_are_strict_and_executable() -> None:
    for name in ("kafka-up.sh", "kafka-down.sh"):
        path = DEPLOY / "kafka" / name
        assert path.stat().st_mode & 0o111, f"{name} is not executable"
        assert "set -euo pipefail" in path.read_text(), name
    pom = (DEPLOY / "kafka" / "pom.xml").read_text()
    assert "<artifactId>kafka_2.13</artifactId>" in pom
    assert re.search(r"<kafka.version>3\.9\.\d+</kafka.version>", pom)
