"""Prometheus metrics of one worker, on a registry of its own (several apps can share a process)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("umh_events", "Messages consumed, by topic", ["topic"], registry=r)
        self.consumer_lag = Gauge(
            "umh_consumer_lag", "Messages behind the end (best effort)", ["topic"], registry=r
        )
        self.solves = Counter("umh_solves", "Solves, by result status", ["status"], registry=r)
        self.solve_seconds = Histogram(
            "umh_solve_seconds", "Solve wall time", buckets=LATENCY_BUCKETS_S, registry=r
        )
        self.tick_to_order = Histogram(
            "umh_tick_to_order_seconds",
            "From the triggering price tick to the published orders",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.out_of_band = Gauge(
            "umh_households_out_of_band",
            "Households of this worker with a class out of band",
            registry=r,
        )
        self.dead_letters = Counter("umh_dead_letters", "Messages sent to dead-letters", registry=r)
        self.households = Gauge("umh_households", "Households owned by this worker", registry=r)
        self.changelog_bytes = Counter(
            "umh_changelog_bytes", "Bytes of household state written to the table", registry=r
        )
        self.changelog_writes = Counter(
            "umh_changelog_writes", "Household state writes (changelog records)", registry=r
        )
        self.price_catch_up_seconds = Gauge(
            "umh_price_catch_up_seconds",
            "Time the price feed took to read every price back at start",
            registry=r,
        )
        self.solve_queue = Gauge(
            "umh_solve_queue", "Households waiting for a solve (or solving)", registry=r
        )
        self.snapshots_read_again = Counter(
            "umh_snapshots_read_again",
            "Snapshot records read a second time and kept out (a re-delivery)",
            registry=r,
        )
        self.writes_left_out = Counter(
            "umh_writes_left_out",
            "Decision writes left out because partitions were moving (derived again after)",
            registry=r,
        )
        self.durable_write_retries = Counter(
            "umh_durable_write_retries",
            "Open-rebalance changelog writes that failed and were tried again before publishing",
            registry=r,
        )
        self.input_stalls = Counter(
            "umh_input_stalls",
            "Input partitions found stalled with records waiting and restarted (stall.py)",
            ["topic"],
            registry=r,
        )
        self.records_skipped = Counter(
            "umh_records_skipped",
            "Input records Faust's stream skipped while partitions moved, left unacknowledged "
            "so that they are read again (commit_gaps.py)",
            ["topic"],
            registry=r,
        )
        self.workarounds = Gauge(
            "umh_kafka_workaround",
            "Client-side work-arounds installed (1), by name (streams/kafka/)",
            ["name"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
