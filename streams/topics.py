"""Topic names (with the configured prefix), their creation, and Kafka client security options."""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from .settings import Settings

log = logging.getLogger(__name__)

COMPACTED = frozenset({"securities", "households"})
INPUTS = ("households", "fills", "cash-flows")
ALL = ("securities", "households", "prices", "fills", "cash-flows", "orders", "drift-alerts",
       "dead-letters")


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
        return cls(t("securities"), t("households"), t("prices"), t("fills"), t("cash-flows"),
                   t("orders"), t("drift-alerts"), t("dead-letters"))

    def all(self) -> tuple[str, ...]:
        return (self.securities, self.households, self.prices, self.fills, self.cash_flows,
                self.orders, self.drift_alerts, self.dead_letters)


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


async def ensure_topics(settings: Settings, *, timeout_s: float = 30.0) -> None:
    """Create every topic the worker uses (idempotent); compacted where the contract says so.

    The embedded broker rejects topic configs it does not know, so a refused compacted creation
    is retried without configs (it has no compaction anyway).
    """
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
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("broker not reachable yet (%s); retrying", exc)
            await asyncio.sleep(1.0)
    try:
        existing = set(await admin.list_topics())
        for base, name in zip(ALL, names.all(), strict=True):
            if name in existing:
                continue
            configs = {"cleanup.policy": "compact"} if base in COMPACTED else {}
            for attempt in (configs, {}) if configs else ({},):
                topic = NewTopic(name, settings.partitions, settings.replication_factor,
                                 topic_configs=attempt)
                try:
                    response = await admin.create_topics([topic])
                except TopicAlreadyExistsError:
                    break
                errors = [e for e in getattr(response, "topic_errors", ()) if e[1] not in (0, 36)]
                if not errors:
                    log.info("created topic=%s partitions=%d", name, settings.partitions)
                    break
                log.warning("create topic=%s configs=%s failed: %s", name, attempt, errors)
    finally:
        await admin.close()
