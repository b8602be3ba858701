"""Topic names (with the configured prefix), their creation, and Kafka client security options."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from aiokafka.partitioner import murmur2

from streams.settings import Settings

log = logging.getLogger(__name__)

# `prices` too: prices are state, the worker reads the latest price of every symbol back from
# it at start (streams/worker/prices.py); compaction bounds that read by the universe.
COMPACTED = frozenset({"securities", "households", "prices"})
INPUTS = ("households", "fills", "cash-flows")
ALL = (
    "securities",
    "households",
    "prices",
    "fills",
    "cash-flows",
    "orders",
    "drift-alerts",
    "dead-letters",
)


def changelog_topic(settings: Settings) -> str:
    """The households table's changelog, as Faust names it (`{app_id}-{table}-changelog`)."""
    return f"{settings.app_id}-{settings.topic('households')}-changelog"


def partition_for(key: str, partitions: int) -> int:
    """Where the Java and aiokafka default partitioners put a key (murmur2, positive, modulo)."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True, slots=True)
class TopicNames:
    securities: str
    households: str
    prices: str
    fills: str
    cash_flows: str
    orders: str
    drift_alerts: str
    dead_letters: str

    @classmethod
    def of(cls, settings: Settings) -> TopicNames:
        t = settings.topic
        return cls(
            t("securities"),
            t("households"),
            t("prices"),
            t("fills"),
            t("cash-flows"),
            t("orders"),
            t("drift-alerts"),
            t("dead-letters"),
        )

    def all(self) -> tuple[str, ...]:
        return (
            self.securities,
            self.households,
            self.prices,
            self.fills,
            self.cash_flows,
            self.orders,
            self.drift_alerts,
            self.dead_letters,
        )


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(cafile=settings.ssl_cafile)
    if settings.ssl_certfile and settings.ssl_keyfile:
        context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments every aiokafka client of the worker takes (bootstrap and security)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "security_protocol": settings.security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism or "PLAIN"
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password
    return options


def min_insync_replicas(replication_factor: int) -> int:
    """`min.insync.replicas` for a topic of this replication factor: one broker may be down
    while `acks=all` writes go on (RF 3 -> 2), and never more than RF - 1 (RF 1 -> 1)."""
    return max(1, min(2, replication_factor - 1))


def topic_configs(base: str, replication_factor: int) -> dict[str, str]:
    configs: dict[str, str] = {}
    if base in COMPACTED:
        configs["cleanup.policy"] = "compact"
    if replication_factor >= 2:
        configs["min.insync.replicas"] = str(min_insync_replicas(replication_factor))
    return configs


class KafkaConnectError(Exception):
    """The worker cannot talk to Kafka; the message says why without any secret."""


def explain(exc: BaseException, settings: Settings) -> str:
    """A message a person can act on for a failed connection (no password, no key material)."""
    from aiokafka.errors import (
        AuthenticationFailedError,
        KafkaConnectionError,
        SaslAuthenticationFailed,
        UnsupportedSaslMechanismError,
    )

    where = f"{settings.security_protocol} {settings.bootstrap}"
    if isinstance(exc, SaslAuthenticationFailed | AuthenticationFailedError):
        return (
            f"SASL authentication failed on {where} (mechanism {settings.sasl_mechanism}, "
            f"user {settings.sasl_username!r}): check UMH_KAFKA_SASL_USERNAME, "
            "UMH_KAFKA_SASL_PASSWORD and UMH_KAFKA_SASL_MECHANISM"
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return (
            f"the broker at {where} does not enable SASL mechanism "
            f"{settings.sasl_mechanism}: check UMH_KAFKA_SASL_MECHANISM"
        )
    if isinstance(exc, ssl.SSLError):
        why = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc
        return (
            f"TLS handshake with {where} failed ({why}): "
            "check UMH_KAFKA_SSL_CAFILE (the CA that signed the brokers' certificates) and "
            "that the listener speaks TLS"
        )
    if isinstance(exc, KafkaConnectionError | OSError | asyncio.TimeoutError):
        return (
            f"cannot connect to Kafka at {where} ({exc}): check UMH_BROKER and "
            "UMH_KAFKA_SECURITY_PROTOCOL"
        )
    return f"cannot use Kafka at {where}: {exc.__class__.__name__}: {exc}"


_FATAL_NAMES = (
    "SaslAuthenticationFailed",
    "AuthenticationFailedError",
    "UnsupportedSaslMechanismError",
)


def _fatal(exc: BaseException) -> bool:
    """Errors that retrying cannot fix: authentication and TLS configuration."""
    return isinstance(exc, ssl.SSLError) or type(exc).__name__ in _FATAL_NAMES


async def diagnose(settings: Settings, timeout_s: float = 10.0) -> BaseException | None:
    """Why a client cannot bootstrap: one direct connection to each broker, with the worker's
    security options, surfaces the TLS or SASL error that aiokafka's bootstrap only logs."""
    from aiokafka.conn import create_conn

    options = client_options(settings)
    options.pop("bootstrap_servers")
    last: BaseException | None = None
    for address in settings.brokers:
        host, _, port = address.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host.strip("[]"), int(port), request_timeout_ms=int(timeout_s * 1000), **options
                ),
                timeout_s,
            )
        except BaseException as exc:  # reported, not handled
            if isinstance(exc, asyncio.CancelledError):
                raise
            last = exc
            if _fatal(exc):
                return exc
            continue
        conn.close()
        return None
    return last


async def ensure_topics(
    settings: Settings, *, timeout_s: float = 30.0, create: bool = True
) -> Settings:
    """Create every topic the worker uses (idempotent); compacted where the contract says so.

    Returns the settings with the replication factor resolved: when `UMH_REPLICATION_FACTOR`
    is not set it is min(3, brokers in the cluster), and topics with RF >= 2 get
    `min.insync.replicas` RF-1 (at most 2), so a 3-node cluster keeps accepting `acks=all`
    writes with one broker down. Faust's changelog and internal topics get the same factor.

    The embedded broker rejects topic configs it does not know, so a refused creation with
    configs is retried without them (it has no compaction or replication anyway). Raises
    `KafkaConnectError` with a clear message on authentication, TLS or connection failures.
    """
    import dataclasses

    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    names = TopicNames.of(settings)
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=10_000)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await admin.start()
            break
        except Exception as exc:
            cause = await diagnose(settings) or exc
            if _fatal(cause) or asyncio.get_running_loop().time() > deadline:
                with contextlib.suppress(Exception):
                    await admin.close()
                raise KafkaConnectError(explain(cause, settings)) from None
            log.warning("broker not reachable yet (%s); retrying", explain(cause, settings))
            await asyncio.sleep(1.0)
    try:
        brokers = len(admin._client.cluster.brokers())
        rf = settings.replication_factor or max(1, min(3, brokers))
        existing = set(await admin.list_topics())
        # The table's changelog too, before the worker joins its group: Faust creates it only
        # as it starts, after its consumer has fetched metadata, and the group leader then
        # assigns no changelog partition ("Ignoring missing topic") until that metadata is
        # refreshed (up to 5 minutes): no standby copies and no recovery meanwhile.
        wanted = [*zip(ALL, names.all(), strict=True), ("households", changelog_topic(settings))]
        for base, name in wanted:
            if name in existing or not create:
                continue
            configs = topic_configs(base, rf)
            for attempt in (configs, {}) if configs else ({},):
                topic = NewTopic(name, settings.partitions, rf, topic_configs=attempt)
                try:
                    response = await admin.create_topics([topic])
                except TopicAlreadyExistsError:
                    break
                errors = [e for e in getattr(response, "topic_errors", ()) if e[1] not in (0, 36)]
                if not errors:
                    log.info(
                        "created topic=%s partitions=%d replication_factor=%d",
                        name,
                        settings.partitions,
                        rf,
                    )
                    break
                log.warning(
                    "create topic=%s configs=%s rf=%d failed: %s", name, attempt, rf, errors
                )
    except Exception as exc:
        if _fatal(exc):
            raise KafkaConnectError(explain(exc, settings)) from None
        raise
    finally:
        await admin.close()
    return dataclasses.replace(settings, replication_factor=rf)
