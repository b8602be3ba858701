"""The order-management system: reads `orders`, fills each order after a short delay on `fills`.

A fill is the whole order at the current simulated price (the market simulator's live dict, else
the order's `est_price`). Sell fills name the lots their order named. `fill_id` is the order id
plus `:fill`, so a replayed order gives the same fill and the worker de-duplicates it. Orders are
de-duplicated here too (the topic is read from its start, at least once).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from schemas import Order, RebalanceResult, ValidationError, dumps, loads, parse_result
from schemas.events import Fill, fill_to_json

from .wire import Counters, assigned_consumer, make_producer, topic, utc_now

log = logging.getLogger(__name__)

FILL_SUFFIX = ":fill"


def fill_id_for(order_id: str) -> str:
    """The deterministic fill id of an order's (single, complete) fill."""
    return f"{order_id}{FILL_SUFFIX}"


def fill_for_order(household_id: str, order: Order, price: float, ts: datetime) -> Fill:
    """The complete fill of `order` at `price`; a sell names the lots its order named."""
    return Fill(
        fill_id=fill_id_for(order.order_id),
        order_id=order.order_id,
        household_id=household_id,
        account_id=order.account_id,
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        price=price,
        ts=ts,
        lots=order.lots if order.side == "sell" else (),
    )


def fills_for_result(
    result: RebalanceResult, prices: Mapping[str, float], ts: datetime
) -> list[Fill]:
    """One fill per order of a `rebalanced` result, at the live price (else `est_price`)."""
    if result.status != "rebalanced":
        return []
    return [
        fill_for_order(result.household_id, o, float(prices.get(o.symbol, o.est_price)), ts)
        for o in result.orders
    ]


@dataclass(slots=True)
class OmsSimulator:
    """Consumes `{prefix}orders`, publishes `{prefix}fills` after `delay_s` (+ up to `jitter_s`).

    `statuses` counts the results seen by status; `order_seen_at` maps rebalance_id to the wall
    time (loop clock) the OMS first read it, for latency figures.
    """

    bootstrap: str
    prefix: str
    prices: Mapping[str, float]
    delay_s: float = 0.5
    jitter_s: float = 0.5
    seed: int = 0
    # this share of rebalances is never filled (the market did not take the orders): they
    # expire on the worker after UMH_ORDER_TTL_S and the household is solved again
    unfilled_share: float = 0.0
    counters: Counters = field(default_factory=Counters)
    clock: Callable[[], datetime] = utc_now  # event time of what it publishes
    statuses: dict[str, int] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)
    _due: list[tuple[float, int, Fill]] = field(default_factory=list)
    _seq: int = 0

    def accept(self, raw: bytes, now: float, rng: np.random.Generator) -> int:
        """Decode one `orders` message and schedule its fills; returns how many were scheduled."""
        self.counters.add_received("orders_messages")
        try:
            result = parse_result(loads(raw))
        except ValidationError as exc:
            log.warning("oms: undecodable order message: %s", exc)
            self.counters.add_received("invalid")
            return 0
        if result.rebalance_id in self._seen:
            self.counters.add_received("duplicates")
            return 0
        self._seen.add(result.rebalance_id)
        self.statuses[result.status] = self.statuses.get(result.status, 0) + 1
        self.counters.add_received("orders", len(result.orders))
        if self.unfilled_share > 0.0 and float(rng.uniform()) < self.unfilled_share:
            self.counters.add_received("left_unfilled")
            return 0
        due = now + self.delay_s + float(rng.uniform(0.0, self.jitter_s))
        # the price is read when the fill is published (see run), not now
        for f in fills_for_result(result, {}, self.clock()):
            self._seq += 1
            heapq.heappush(self._due, (due, self._seq, f))
        return len(result.orders)

    def pending(self) -> int:
        return len(self._due)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: read orders, publish the fills that are due."""
        rng = np.random.default_rng(self.seed)
        consumer = await assigned_consumer(
            self.bootstrap, [topic(self.prefix, "orders")], from_end=False
        )
        producer = make_producer(self.bootstrap)
        await producer.start()
        fills_topic = topic(self.prefix, "fills")
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100, max_records=500)
                now = loop.time()
                for records in batches.values():
                    for record in records:
                        if record.value is not None:
                            self.accept(record.value, now, rng)
                sent = 0
                while self._due and self._due[0][0] <= now:
                    _, _, planned = heapq.heappop(self._due)
                    price = float(self.prices.get(planned.symbol, planned.price))
                    fill = replace(planned, price=price, ts=self.clock())
                    await producer.send(
                        fills_topic, dumps(fill_to_json(fill)), key=fill.household_id
                    )
                    sent += 1
                if sent:
                    self.counters.add_sent("fills", sent)
        finally:
            await consumer.stop()
            await producer.stop()
