"""Prometheus metrics of one worker, on a registry of its own (several apps can share a process)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

#: The worker's own steps on a tick's way to an order, timed on the event loop (wall time of
#: code that does not wait, so the main process's CPU): the states read from the table
#: (decode), the view, drift and decision (decide), the state writes to the table (persist:
#: encoding, Faust's table set, the book's index row), the result's encoding for `orders`
#: (publish; the producer's own work is in the rest). The rest of
#: the main process's CPU (`process_cpu_seconds_total` less these) is Kafka's client, Faust,
#: the event loop and the solver pool's feeder thread.
STAGES = ("decode", "decide", "persist", "publish")

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

        self.stage_seconds = Counter(
            "umh_stage_seconds",
            "Main-process time by step of the tick -> order path (metrics.STAGES)",
            ["stage"],
            registry=r,
        )
        self._stages = {name: self.stage_seconds.labels(stage=name) for name in STAGES}
        self.solver_seconds = Counter(
            "umh_solver_seconds",
            "Time the solver processes spent solving (the results' solve_ms)",
            registry=r,
        )
        ProcessCollector(registry=r)  # process_cpu_seconds_total of the main process

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the block's wall time to its stage (blocks that do not await)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self._stages[name].inc(time.perf_counter() - started)

    def render(self) -> bytes:
        return generate_latest(self.registry)
