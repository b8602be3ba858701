"""The one place that reads `UMH_*` from the environment into a frozen, validated `Settings`.

Everything else receives a `Settings`. A bad value raises `ConfigError` naming the variable, so a
misconfigured worker stops with a message a person can act on; secrets never appear in `repr`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from schemas import UmhError

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-512")
SECRET_FIELDS = frozenset({"api_token", "sasl_password"})


WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})


def machine_address() -> str:
    """This machine's address as peers see it: the hostname's address when it resolves to a
    non-loopback one (a pod's IP, a compose service's), else the hostname itself."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        return name
    return name if address.startswith("127.") else address


STORES = ("MEMORY", "ROCKSDB")  # UMH_STORE, any case


class ConfigError(UmhError):
    """A `UMH_*` variable is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    brokers: tuple[str, ...] = ("127.0.0.1:9092",)
    topic_prefix: str = ""
    app_id: str = "umh"
    order_ttl_s: float = 900.0
    web_host: str = "127.0.0.1"
    web_port: int = 6066  # 0 disables the web server
    # the host other workers reach this one at (console forwarding); None: see `advertised_host`
    web_advertised_host: str | None = None
    api_token: str | None = None
    partitions: int = 4
    # None: chosen by the worker from the cluster (min(3, brokers)), see topics.resolve_cluster
    replication_factor: int | None = None
    standby_replicas: int = 1  # warm copies of each table partition on other workers
    coalesce_ms: float = 75.0
    # solver processes (UMH_SOLVER_PROCESSES; default: the machine's cores); 0 solves in-process
    solver_processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    # records of each `prices` partition read back at start (prices as state, worker/prices.py)
    prices_readback: int = 200_000
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    processing_guarantee: str = "at_least_once"
    data_dir: str | None = None
    # the households table's store: "rocksdb" or "memory"; None: RocksDB when data_dir is set
    store: str | None = None

    @property
    def table_store(self) -> str:
        """Faust's store URL: RocksDB (on disk under `data_dir`: a restart replays only the
        changelog written since) when a data directory is given, else memory."""
        kind = self.store or ("rocksdb" if self.data_dir else "memory")
        # RocksDB through streams/worker/store.py (writes outside a stream event)
        return "umhrocksdb://" if kind == "rocksdb" else f"{kind}://"

    @property
    def broker_url(self) -> str:
        """`kafka://h:p[;h:p]`, the form Faust's `broker` setting takes."""
        return "kafka://" + ";".join(self.brokers)

    @property
    def bootstrap(self) -> str:
        """`h:p,h:p`, the form aiokafka takes."""
        return ",".join(self.brokers)

    @property
    def web_enabled(self) -> bool:
        return self.web_port != 0

    @property
    def advertised_host(self) -> str:
        """The host in this worker's canonical URL: `UMH_WEB_ADVERTISED_HOST`, else the bind
        host, unless that is a wildcard (0.0.0.0, ::), which no peer can connect to: then this
        machine's address."""
        if self.web_advertised_host:
            return self.web_advertised_host
        if self.web_host in WILDCARD_HOSTS:
            return machine_address()
        return self.web_host

    @property
    def canonical_url(self) -> str:
        """Where other workers reach this worker's web server (Faust's `canonical_url`)."""
        host = self.advertised_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 literal
        return f"http://{host}:{self.web_port or 6066}"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS and value:
                value = "***"
            parts.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(parts)})"

    __str__ = __repr__


def parse_brokers(text: str, var: str = "UMH_BROKER") -> tuple[str, ...]:
    """`kafka://h:p[,h:p]` (or bare `h:p,...`) -> ("h:p", ...); every entry needs a valid port."""
    raw = text.strip()
    if "://" in raw:
        scheme, _, rest = raw.partition("://")
        if scheme not in ("kafka", "tcp"):
            raise ConfigError(f"{var}: unsupported scheme {scheme!r} (use kafka://host:port)")
        raw = rest
    raw = raw.rstrip("/")
    out: list[str] = []
    for part in raw.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        parsed = urlsplit(f"//{part}")
        try:
            port = parsed.port
        except ValueError:
            port = None
        host = parsed.hostname
        if not host or port is None or not 0 < port < 65536:
            raise ConfigError(f"{var}: {part!r} is not host:port (in {text!r})")
        out.append(f"{host}:{port}" if ":" not in host else f"[{host}]:{port}")
    if not out:
        raise ConfigError(f"{var}: no broker address in {text!r}")
    return tuple(out)


def _number(env: Mapping[str, str], var: str, default: float, *, minimum: float) -> float:
    text = env.get(var, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{var}: {text!r} is not a number") from None
    if not value >= minimum or value == float("inf"):
        raise ConfigError(f"{var}: must be a finite number >= {minimum:g} (got {text!r})")
    return value


def _integer(
    env: Mapping[str, str], var: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    text = env.get(var, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{var}: {text!r} is not an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{var}: must be {bound} (got {value})")
    return value


def _choice(
    env: Mapping[str, str], var: str, options: tuple[str, ...], default: str | None
) -> str | None:
    text = env.get(var, "").strip()
    if not text:
        return default
    value = text.upper()
    if value not in options:
        raise ConfigError(f"{var}: must be one of {', '.join(options)} (got {text!r})")
    return value


def _file(env: Mapping[str, str], var: str) -> str | None:
    text = env.get(var, "").strip()
    if not text:
        return None
    if not Path(text).is_file():
        raise ConfigError(f"{var}: no readable file at {text!r}")
    return text


def _host(env: Mapping[str, str], var: str) -> str | None:
    text = env.get(var, "").strip()
    if not text:
        return None
    if text in WILDCARD_HOSTS or any(c in text for c in "/ ?#@") or text.count(":") == 1:
        raise ConfigError(
            f"{var}: a host name or IP address other workers can connect to, without scheme or "
            f"port (got {text!r})"
        )
    return text


def _optional(env: Mapping[str, str], var: str) -> str | None:
    return env.get(var) or None


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read and validate `UMH_*` (from `os.environ` unless `env` is given)."""
    env = os.environ if env is None else env
    prefix = env.get("UMH_TOPIC_PREFIX", "")
    if prefix and not all(c.isalnum() or c in "._-" for c in prefix):
        raise ConfigError(
            f"UMH_TOPIC_PREFIX: only letters, digits, '.', '_' and '-' (got {prefix!r})"
        )
    app_id = env.get("UMH_APP_ID", "").strip() or "umh"
    if not all(c.isalnum() or c in "._-" for c in app_id):
        raise ConfigError(f"UMH_APP_ID: only letters, digits, '.', '_' and '-' (got {app_id!r})")
    protocol = _choice(env, "UMH_KAFKA_SECURITY_PROTOCOL", SECURITY_PROTOCOLS, "PLAINTEXT")
    mechanism = _choice(env, "UMH_KAFKA_SASL_MECHANISM", SASL_MECHANISMS, None)
    username = _optional(env, "UMH_KAFKA_SASL_USERNAME")
    password = _optional(env, "UMH_KAFKA_SASL_PASSWORD")
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        if not mechanism:
            # no silent default: a PLAIN fallback would send the password in the clear to a
            # listener that expects SCRAM and fail later with a less helpful error
            raise ConfigError(
                f"UMH_KAFKA_SASL_MECHANISM: required with {protocol} "
                f"(one of {', '.join(SASL_MECHANISMS)})"
            )
        if not username:
            raise ConfigError(f"UMH_KAFKA_SASL_USERNAME: required with {protocol}")
        if not password:
            raise ConfigError(f"UMH_KAFKA_SASL_PASSWORD: required with {protocol}")
    elif username or password or mechanism:
        raise ConfigError(
            "UMH_KAFKA_SECURITY_PROTOCOL: SASL credentials are set but the protocol is "
            f"{protocol}; use SASL_PLAINTEXT or SASL_SSL"
        )
    certfile = _file(env, "UMH_KAFKA_SSL_CERTFILE")
    keyfile = _file(env, "UMH_KAFKA_SSL_KEYFILE")
    if bool(certfile) != bool(keyfile):
        missing = "UMH_KAFKA_SSL_KEYFILE" if certfile else "UMH_KAFKA_SSL_CERTFILE"
        raise ConfigError(f"{missing}: a client certificate needs both the cert and the key file")
    guarantee = env.get("UMH_PROCESSING_GUARANTEE", "").strip() or "at_least_once"
    if guarantee not in ("at_least_once", "exactly_once"):
        raise ConfigError(
            f"UMH_PROCESSING_GUARANTEE: must be at_least_once or exactly_once (got {guarantee!r})"
        )
    values: dict[str, Any] = dict(
        brokers=parse_brokers(env.get("UMH_BROKER", "") or "kafka://127.0.0.1:9092"),
        topic_prefix=prefix,
        app_id=app_id,
        order_ttl_s=_number(env, "UMH_ORDER_TTL_S", 900.0, minimum=0.0),
        web_host=env.get("UMH_WEB_HOST", "").strip() or "127.0.0.1",
        web_port=_integer(env, "UMH_WEB_PORT", 6066, minimum=0, maximum=65535),
        web_advertised_host=_host(env, "UMH_WEB_ADVERTISED_HOST"),
        api_token=_optional(env, "UMH_API_TOKEN"),
        partitions=_integer(env, "UMH_PARTITIONS", 4, minimum=1, maximum=10_000),
        replication_factor=(
            _integer(env, "UMH_REPLICATION_FACTOR", 1, minimum=1, maximum=100)
            if env.get("UMH_REPLICATION_FACTOR", "").strip()
            else None
        ),
        standby_replicas=_integer(env, "UMH_STANDBY_REPLICAS", 1, minimum=0, maximum=10),
        coalesce_ms=_number(env, "UMH_COALESCE_MS", 75.0, minimum=0.0),
        solver_processes=_integer(
            env, "UMH_SOLVER_PROCESSES", os.cpu_count() or 1, minimum=0, maximum=256
        ),
        prices_readback=_integer(
            env, "UMH_PRICES_READBACK", 200_000, minimum=1, maximum=1_000_000_000
        ),
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username=username,
        sasl_password=password,
        ssl_cafile=_file(env, "UMH_KAFKA_SSL_CAFILE"),
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        processing_guarantee=guarantee,
        data_dir=_optional(env, "UMH_DATA_DIR"),
        store=(_choice(env, "UMH_STORE", STORES, None) or "").lower() or None,
    )
    values.update(overrides)
    return Settings(**values)
