"""Fault tests: a 3-node Apache Kafka cluster (RF 3, min.insync.replicas 2) for the module,
workers as subprocesses, a driver streaming ticks, fills and cash flows while something dies.

Marked `faults`; they need Java (and Maven once, for the jars). Without them the module is
skipped with the reason, or fails when `UMH_REQUIRE_KAFKA=1`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from integration.conftest import KafkaCluster, kafka_unavailable_or_fail


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: kills brokers and workers of a 3-node Apache Kafka cluster"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Minutes of 3-node cluster time: only when asked for (`-m faults` or UMH_FAULTS=1)."""
    if "faults" in (config.getoption("markexpr") or "") or os.environ.get("UMH_FAULTS") == "1":
        return
    skip = pytest.mark.skip(reason="fault tests: run with -m faults or UMH_FAULTS=1")
    for item in items:
        if item.get_closest_marker("faults"):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def kafka3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    kafka_unavailable_or_fail()
    cluster = KafkaCluster.start(tmp_path_factory.mktemp("kafka3"), 3)
    try:
        yield cluster
    finally:
        cluster.stop()
