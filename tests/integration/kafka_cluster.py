"""Start and stop a real Apache Kafka (KRaft) cluster for tests: a thin wrapper around
deploy/kafka/kafka-up.sh and kafka-down.sh. No pytest in here, only subprocess, so that any
fixture (session-scoped, per-module) or script can use it:

    reason = kafka_available()
    if reason:
        pytest.skip(reason)
    bootstrap = start_kafka(3, REPO_ROOT)           # "127.0.0.1:19092,127.0.0.1:19093,..."
    try:
        ...  # UMH_BROKER=f"kafka://{bootstrap}"
    finally:
        stop_kafka(REPO_ROOT)

With security=True the cluster also serves SASL_PLAINTEXT (SCRAM-SHA-512 and PLAIN, user umh /
umh-secret) on 19095 and SSL on 19096 (node 1); `security_env(repo_root, "sasl"|"ssl")` gives
those addresses, credentials and CA/client certificate paths as UMH_* variables.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

KAFKA_VERSION = "3.9.2"
DEFAULT_START_TIMEOUT_S = 600.0  # includes the one-time Maven download of the jars


def _script(repo_root: Path, name: str) -> Path:
    return Path(repo_root) / "deploy" / "kafka" / name


def _run_dir(repo_root: Path) -> Path:
    return Path(repo_root) / ".cache" / "kafka" / "run"


def kafka_available(repo_root: Path | None = None) -> str | None:
    """None when a cluster can be started here, else the reason why not (for a skip message)."""
    if shutil.which("java") is None:
        return "java not found on PATH (Apache Kafka needs Java 17+)"
    root = Path(repo_root) if repo_root is not None else Path(__file__).resolve().parents[2]
    jars = root / ".cache" / "kafka" / KAFKA_VERSION / "lib" / f"kafka_2.13-{KAFKA_VERSION}.jar"
    if not jars.exists() and shutil.which("mvn") is None:
        return "mvn not found on PATH and no cached Kafka jars (needed once to fetch them)"
    if not _script(root, "kafka-up.sh").exists():
        return f"{_script(root, 'kafka-up.sh')} is missing"
    return None


def start_kafka(
    nodes: int,
    repo_root: Path,
    security: bool = False,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
    port_base: int | None = None,
) -> str:
    """Start (or reuse, when the same shape is already up) a KRaft cluster of `nodes` nodes.

    Returns the PLAINTEXT bootstrap string "127.0.0.1:19092[,127.0.0.1:19093,...]".
    `port_base` (or env KAFKA_PORT_BASE) moves every port: client ports port_base..+2,
    controllers +100, SASL +3, SSL +4 (default 19092).
    Raises RuntimeError with the script's output when the cluster does not come up.
    """
    if nodes not in (1, 2, 3):
        raise ValueError(f"nodes must be 1, 2 or 3, not {nodes}")
    env = dict(os.environ)
    env["KAFKA_NODES"] = str(nodes)
    env["KAFKA_SECURITY"] = "1" if security else "0"
    env.setdefault("KAFKA_VERSION", KAFKA_VERSION)
    if port_base is not None:
        env["KAFKA_PORT_BASE"] = str(port_base)
    try:
        proc = subprocess.run(
            [str(_script(repo_root, "kafka-up.sh"))],
            cwd=repo_root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stop_kafka(repo_root)
        raise RuntimeError(f"kafka-up.sh timed out after {timeout_s:.0f}s") from exc
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"kafka-up.sh failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return lines[-1].removeprefix("kafka://")


def stop_kafka(repo_root: Path, timeout_s: float = 120.0) -> None:
    """Stop the cluster (SIGTERM, then SIGKILL) and remove its data. Safe to call twice."""
    subprocess.run(
        [str(_script(repo_root, "kafka-down.sh"))],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def cluster_settings(repo_root: Path) -> dict[str, str]:
    """The key=value lines kafka-up.sh wrote to .cache/kafka/run/cluster.env ({} when down).

    Keys: signature, bootstrap, cluster_id and, with security: sasl_bootstrap, ssl_bootstrap,
    sasl_user, sasl_password, ssl_cafile, ssl_certfile, ssl_keyfile.
    """
    path = _run_dir(repo_root) / "cluster.env"
    if not path.exists():
        return {}
    settings: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            settings[key] = value
    return settings


def security_env(
    repo_root: Path, listener: str = "sasl", mechanism: str = "SCRAM-SHA-512"
) -> dict[str, str]:
    """UMH_* environment for a worker on a secured listener of a cluster started with
    security=True: listener "sasl" (SASL_PLAINTEXT; mechanism SCRAM-SHA-512 or PLAIN) or "ssl"
    (SSL with the generated CA; client certificate for mutual TLS included)."""
    s = cluster_settings(repo_root)
    if "sasl_bootstrap" not in s:
        raise RuntimeError("the running cluster was not started with security=True")
    if listener == "sasl":
        return {
            "UMH_BROKER": "kafka://" + s["sasl_bootstrap"],
            "UMH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "UMH_KAFKA_SASL_MECHANISM": mechanism,
            "UMH_KAFKA_SASL_USERNAME": s["sasl_user"],
            "UMH_KAFKA_SASL_PASSWORD": s["sasl_password"],
        }
    if listener == "ssl":
        return {
            "UMH_BROKER": "kafka://" + s["ssl_bootstrap"],
            "UMH_KAFKA_SECURITY_PROTOCOL": "SSL",
            "UMH_KAFKA_SSL_CAFILE": s["ssl_cafile"],
            "UMH_KAFKA_SSL_CERTFILE": s["ssl_certfile"],
            "UMH_KAFKA_SSL_KEYFILE": s["ssl_keyfile"],
        }
    raise ValueError(f"listener must be 'sasl' or 'ssl', not {listener!r}")
