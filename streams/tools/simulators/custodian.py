"""The custodian: the book's snapshots and securities at start, then deposits and withdrawals.

On start it publishes every security (`security/v1` on `securities`, keyed by symbol) and every
household snapshot (`household/v1` on `households`, keyed by household id; its `securities` map
with prices is included unless told otherwise). Then it publishes random `cash_flow/v1` messages
on `cash-flows`: deposits into any account, and withdrawal requests (1-4% of an account's value,
so usually more than its cash: the rebalancer must raise cash) in `rebalance`-mode households.

The custodian keeps each account's cash as a bank would (snapshot cash, plus deposits and sell
proceeds, less buys and withdrawals, from the `fills` it reads) and pays a request out (a
`withdrawal` that `settles` it) once the account's cash covers it, at least `settle_delay_s` after
the request; a request still uncovered after `settle_timeout_s` is dropped and counted `expired`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from aiokafka import AIOKafkaProducer

from schemas import Household, Security, ValidationError, dumps, household_to_json, loads
from schemas.events import (
    CashFlow,
    Fill,
    cash_flow_to_json,
    parse_fill,
    security_event_to_json,
)

from .wire import Counters, assigned_consumer, make_producer, topic, utc_now

log = logging.getLogger(__name__)

SETTLE_SUFFIX = ":settle"


def account_values(h: Household) -> dict[str, float]:
    """Account id -> cash + holdings at the snapshot's prices."""
    out: dict[str, float] = {}
    for a in h.accounts:
        held = 0.0
        for lot in a.lots:
            sec = h.securities.get(lot.symbol)
            held += lot.quantity * float(sec.price or 0.0) if sec else 0.0
        out[a.account_id] = a.cash + held
    return out


def draw_flow(
    h: Household, seq: int, ts: datetime, rng: np.random.Generator, withdraw_share: float = 0.3
) -> CashFlow:
    """A deposit (1k-25k) into a random account, or (rebalance mode, `withdraw_share` of the time)
    a withdrawal request of 1-4% of an account's value. `flow_id` is `{household}:cf:{seq}`."""
    account = h.accounts[int(rng.integers(len(h.accounts)))]
    flow_id = f"{h.household_id}:cf:{seq}"
    if h.mode == "rebalance" and rng.random() < withdraw_share:
        value = account_values(h)[account.account_id]
        amount = max(1000.0, round(float(rng.uniform(0.01, 0.04)) * value, -2))
        kind = "withdrawal_request"
    else:
        amount = round(float(rng.uniform(1000.0, 25_000.0)), -2)
        kind = "deposit"
    return CashFlow(flow_id, h.household_id, account.account_id, kind, amount, ts)


def settling_withdrawal(request: CashFlow, ts: datetime) -> CashFlow:
    """The `withdrawal` that pays `request` out and settles it (deterministic id)."""
    return CashFlow(
        flow_id=f"{request.flow_id}{SETTLE_SUFFIX}",
        household_id=request.household_id,
        account_id=request.account_id,
        kind="withdrawal",
        amount=request.amount,
        ts=ts,
        settles=request.flow_id,
    )


def apply_fill_to_cash(cash: dict[str, float], fill: Fill) -> None:
    """The bank's view: a sell adds its proceeds, a buy takes its cost (accounts it knows)."""
    if fill.account_id not in cash:
        return
    amount = fill.quantity * fill.price
    cash[fill.account_id] += amount if fill.side == "sell" else -amount


@dataclass(slots=True)
class Pending:
    request: CashFlow
    requested_at: float  # loop clock


@dataclass(slots=True)
class CustodianSimulator:
    bootstrap: str
    prefix: str
    book: Sequence[Household]
    universe: Mapping[str, Security]
    seed: int = 0
    flows_per_s: float = 2.0
    include_securities: bool = True
    withdraw_share: float = 0.3
    settle_delay_s: float = 2.0
    settle_timeout_s: float = 120.0
    counters: Counters = field(default_factory=Counters)
    clock: Callable[[], datetime] = utc_now  # event time of what it publishes
    cash: dict[str, float] = field(default_factory=dict)
    pending: dict[str, Pending] = field(default_factory=dict)
    _seq: int = 0

    def __post_init__(self) -> None:
        for h in self.book:
            for a in h.accounts:
                self.cash[a.account_id] = a.cash

    async def publish_book(self, producer: AIOKafkaProducer) -> None:
        """Securities first (the master), then every household snapshot; waits for the acks."""
        sec_topic = topic(self.prefix, "securities")
        futures = [
            await producer.send(sec_topic, dumps(security_event_to_json(sec)), key=sym)
            for sym, sec in self.universe.items()
        ]
        await asyncio.gather(*futures)
        self.counters.add_sent("securities", len(futures))
        hh_topic = topic(self.prefix, "households")
        futures = []
        for h in self.book:
            body = household_to_json(h)
            if not self.include_securities:
                body.pop("securities", None)
            futures.append(await producer.send(hh_topic, dumps(body), key=h.household_id))
            if len(futures) >= 1000:
                await asyncio.gather(*futures)
                self.counters.add_sent("households", len(futures))
                futures = []
        await asyncio.gather(*futures)
        self.counters.add_sent("households", len(futures))

    def on_fill(self, raw: bytes) -> None:
        try:
            fill = parse_fill(loads(raw))
        except ValidationError:
            self.counters.add_received("invalid_fills")
            return
        self.counters.add_received("fills")
        apply_fill_to_cash(self.cash, fill)

    def due_settlements(self, now: float) -> list[CashFlow]:
        """Requests the account's cash now covers (and old enough); drops expired ones."""
        out: list[CashFlow] = []
        for flow_id, p in list(self.pending.items()):
            age = now - p.requested_at
            if age >= self.settle_delay_s and self.cash.get(p.request.account_id, 0.0) >= (
                p.request.amount - 0.01
            ):
                out.append(p.request)
                del self.pending[flow_id]
            elif age > self.settle_timeout_s:
                del self.pending[flow_id]
                self.counters.add_sent("expired", 1)
        return out

    async def run(
        self,
        stop: asyncio.Event,
        *,
        publish_book: bool = True,
        flows_start: asyncio.Event | None = None,
    ) -> None:
        """Publish the book (unless told not to), then cash flows until `stop` is set.

        With `flows_start`, flows wait until it is set: a flow for a household whose snapshot the
        worker has not loaded yet is (rightly) a dead letter, so the demo opens the gate only
        once the worker reports the whole book loaded.
        """
        rng = np.random.default_rng(self.seed)
        producer = make_producer(self.bootstrap)
        await producer.start()
        consumer = None
        try:
            if publish_book:
                await self.publish_book(producer)
            consumer = await assigned_consumer(
                self.bootstrap, [topic(self.prefix, "fills")], from_end=False
            )
            flows_topic = topic(self.prefix, "cash-flows")
            loop = asyncio.get_running_loop()
            last = loop.time()
            budget = 0.0
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100, max_records=1000)
                for records in batches.values():
                    for record in records:
                        if record.value is not None:
                            self.on_fill(record.value)
                now = loop.time()
                if flows_start is None or flows_start.is_set():
                    budget += self.flows_per_s * (now - last)
                last = now
                flows: list[CashFlow] = []
                ts = self.clock()
                while budget >= 1.0 and self.book:
                    budget -= 1.0
                    h = self.book[int(rng.integers(len(self.book)))]
                    self._seq += 1
                    flows.append(draw_flow(h, self._seq, ts, rng, self.withdraw_share))
                flows += [settling_withdrawal(r, ts) for r in self.due_settlements(now)]
                for f in flows:
                    await producer.send(
                        flows_topic, dumps(cash_flow_to_json(f)), key=f.household_id
                    )
                    self.counters.add_sent(f.kind)
                    if f.kind == "deposit":
                        self.cash[f.account_id] = self.cash.get(f.account_id, 0.0) + f.amount
                    elif f.kind == "withdrawal":
                        self.cash[f.account_id] = self.cash.get(f.account_id, 0.0) - f.amount
                    else:
                        self.pending[f.flow_id] = Pending(f, now)
        finally:
            if consumer is not None:
                await consumer.stop()
            await producer.stop()
