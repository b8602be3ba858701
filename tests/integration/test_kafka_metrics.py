"""`/metrics` carries what the dashboards and alerts read, on both brokers: events by topic,
consumer lag, solves by status, solve and tick-to-order histograms, households out of band,
dead letters."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from .conftest import Cluster, price, snapshot

pytestmark = pytest.mark.integration

EXPECTED = (
    "# TYPE umh_events_total counter",
    "# TYPE umh_consumer_lag gauge",
    "# TYPE umh_solves_total counter",
    "# TYPE umh_solve_seconds histogram",
    "# TYPE umh_tick_to_order_seconds histogram",
    "# TYPE umh_households_out_of_band gauge",
    "# TYPE umh_dead_letters_total counter",
)


def value(text: str, pattern: str) -> float:
    m = re.search(rf"^{pattern} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def test_metrics_expose_the_operational_figures(cluster: Cluster) -> None:
    worker = cluster.worker()
    worker.start()
    hid = "hh-metrics"
    await cluster.send("households", hid, snapshot(hid, eq="MEQ", fi="MFI"))
    # The tick must be what pushes the household out of band (so that tick-to-order is
    # measured): send it only once the worker holds the snapshot (independent topics race).
    loaded = time.monotonic() + 20
    while value(worker.get("/metrics").decode(), "umh_households") < 1:
        assert time.monotonic() < loaded, "the worker never loaded the snapshot"
        await asyncio.sleep(0.2)
    await cluster.send("prices", "MEQ", price("MEQ", 150.0))
    await cluster.send("fills", hid, b"not json")
    assert await cluster.read("orders", lambda m: any(x.get("household_id") == hid for x in m))
    deadline = time.monotonic() + 15
    text = ""
    while time.monotonic() < deadline:
        text = worker.get("/metrics").decode()
        if value(text, "umh_dead_letters_total") >= 1 and "umh_consumer_lag{" in text:
            break
        await asyncio.sleep(0.5)
    missing = [line for line in EXPECTED if line not in text]
    assert not missing, missing
    for topic in ("households", "prices", "fills"):
        assert value(text, rf'umh_events_total\{{topic="{cluster.topic(topic)}"\}}') >= 1, topic
    assert value(text, r'umh_solves_total\{status="rebalanced"\}') >= 1
    assert value(text, "umh_solve_seconds_count") >= 1
    assert value(text, "umh_tick_to_order_seconds_count") >= 1
    assert value(text, "umh_dead_letters_total") >= 1
    assert "umh_consumer_lag{" in text
    # the lag of the topics the worker reads: its table's changelog (read only while
    # recovering, its position left where recovery stopped) is not one of them
    assert "-changelog" not in "".join(re.findall(r"^umh_consumer_lag\{.*$", text, re.M))
    assert re.search(r"^umh_households_out_of_band \S+$", text, re.M)
