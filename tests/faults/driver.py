"""A market, a custodian and an OMS on aiokafka, for fault tests: households, ticks, fills,
cash flows, and the book-keeping to check the workers against afterwards.

Households (all 60/40 us_equity/fixed_income, price 100, bands 5/25):

- tick groups: 20 households each on their own symbols `EQg`/`FIg`; an episode is one tick that
  moves `EQg` by x1.5 or /1.5, which pushes every household of the group out of band;
- deposit group: an episode is a 2,000 USD deposit into the taxable account (cash out of band);
- loss group (`LEQ` in wash group `lgrp`, replacement `LALT`): before the fault some of them sell
  their taxable `LEQ` at a loss and buy `LALT` (manual trades, as fills); after the fault `LEQ`
  falls and every one of them must buy equities: those with the loss must not buy `LEQ` (wash
  sale, remembered only in the worker's state), the controls do.

A group's next episode starts only when every order of the previous one has been filled (and a
moment has passed for the fills to be applied), so each episode must give exactly one rebalance.
Noise ticks (+/-0.2 %) on every symbol every `noise_s` keep prices moving, so a household whose
breach tick was missed during a takeover is re-evaluated on its next tick.

The OMS fills every order once (by order_id) at its estimated price, sells before buys; it
records every order and alert message, duplicates included, with its arrival time and the worker
that produced it (the `umh-worker` header).

Every client here outlives a broker kill: metadata is refreshed often (a dead leader is not
pinned), and a send that fails after the producer's own retries is retried until it lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

DAY = "2026-11-25"
GROUP_SIZE = 20
WORKER_HEADER = "umh-worker"
#: Client settings that follow leader changes quickly after a broker dies.
FAILOVER_OPTIONS: dict[str, Any] = {
    "metadata_max_age_ms": 2000,
    "retry_backoff_ms": 100,
    "request_timeout_ms": 10_000,
}
SEND_DEADLINE_S = 90.0


def ts(second: float) -> str:
    s = int(second) % 36_000
    return f"{DAY}T{9 + s // 3600:02d}:{(s // 60) % 60:02d}:{s % 60:02d}Z"


def household(
    hid: str,
    eq: str,
    fi: str,
    *,
    taxable_eq: float = 0.0,
    eq_price: float = 100.0,
    alt: str | None = None,
    mode: str = "rebalance",
    swapped: bool = False,
) -> dict[str, Any]:
    """60 shares of `eq` and 40 of `fi` at 100 (IRA), `taxable_eq` of them in the taxable
    account at a basis of 150 a share (a loss waiting)."""
    securities: dict[str, Any] = {
        eq: {
            "price": eq_price,
            "asset_class": "us_equity",
            "wash_group": f"{eq}-grp",
            "fractional": True,
        },
        fi: {"price": 100.0, "asset_class": "fixed_income", "fractional": True},
    }
    buy_eq = [eq]
    if alt:
        securities[eq]["wash_group"] = "lgrp"
        securities[alt] = {
            "price": 100.0,
            "asset_class": "us_equity",
            "wash_group": "altgrp",
            "fractional": True,
        }
        buy_eq.append(alt)
    ira_eq = 60 - taxable_eq
    tax_lots = (
        [
            {
                "lot_id": "T-1",
                "symbol": alt if swapped else eq,
                "quantity": taxable_eq,
                "cost_basis": (100.0 if swapped else 150.0) * taxable_eq,
                "acquired": DAY if swapped else "2025-06-02",
            }
        ]
        if taxable_eq
        else []
    )
    return {
        "schema": "household/v1",
        "household_id": hid,
        "as_of": "2026-11-25" if swapped else "2026-11-24",
        "mode": mode,
        "target": {"us_equity": 0.6, "fixed_income": 0.4},
        "buy_list": {"us_equity": buy_eq, "fixed_income": [fi]},
        "options": {"min_trade_value": 0.0, "transaction_cost_bps": 0.0, "harvest_losses": False},
        "accounts": [
            {
                "account_id": f"{hid}-IRA",
                "type": "tax_deferred",
                "cash": 0.0,
                "lots": [
                    {
                        "lot_id": "I-1",
                        "symbol": eq,
                        "quantity": ira_eq,
                        "cost_basis": 50.0 * ira_eq,
                        "acquired": "2020-01-02",
                    },
                    {
                        "lot_id": "I-2",
                        "symbol": fi,
                        "quantity": 40,
                        "cost_basis": 4000.0,
                        "acquired": "2020-01-02",
                    },
                ],
            },
            {"account_id": f"{hid}-TAX", "type": "taxable", "cash": 0.0, "lots": tax_lots},
        ],
        "securities": securities,
    }


@dataclass
class Book:
    """What the workers should hold: snapshots plus every fill and flow sent."""

    # hid -> account -> {"cash": float, symbol: quantity}
    accounts: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def load(self, snap: dict[str, Any]) -> None:
        acc: dict[str, dict[str, float]] = {}
        for a in snap["accounts"]:
            pos: dict[str, float] = defaultdict(float)
            pos["cash"] = a["cash"]
            for lot in a["lots"]:
                pos[lot["symbol"]] += lot["quantity"]
            acc[a["account_id"]] = pos
        self.accounts[snap["household_id"]] = acc

    def fill(self, f: dict[str, Any]) -> None:
        pos = self.accounts[f["household_id"]][f["account_id"]]
        sign = 1.0 if f["side"] == "buy" else -1.0
        pos[f["symbol"]] += sign * f["quantity"]
        pos["cash"] -= sign * f["quantity"] * f["price"]

    def deposit(self, flow: dict[str, Any]) -> None:
        self.accounts[flow["household_id"]][flow["account_id"]]["cash"] += flow["amount"]


@dataclass
class OrderSeen:
    arrival_s: float
    rebalance: dict[str, Any]
    worker: str | None = None  # the producing worker's canonical URL


@dataclass
class AlertSeen:
    arrival_s: float
    alert: dict[str, Any]
    worker: str | None = None


def producer_of(headers: Any) -> str | None:
    for key, value in headers or ():
        if key == WORKER_HEADER:
            return bytes(value).decode()
    return None


class Driver:
    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        households: int = 200,
        seed: int = 7,
        noise_s: float = 0.5,
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.noise_s = noise_s
        self.book = Book()
        self.level: dict[str, float] = {}
        self.groups: dict[str, list[str]] = {}  # symbol that breaches -> its households
        self.deposit_hids: list[str] = []
        self.loss_hids: list[str] = []  # with a taxable loss sale before the fault
        self.control_hids: list[str] = []  # same shape, no loss sale
        self.orders: list[OrderSeen] = []
        self.by_rebalance: dict[str, dict[str, Any]] = {}  # rebalance_id -> first seen
        self.conflicts: list[str] = []  # same order_id, different content
        self.filled: set[str] = set()  # order ids filled
        self.fill_sent_s: dict[str, float] = {}  # rebalance_id -> when its last fill was sent
        # key -> "topic/partition@offset" of each message sent with it (for failure reports)
        self.sent_at: defaultdict[str, list[str]] = defaultdict(list)
        self.alerts: list[AlertSeen] = []
        self.send_retries = 0
        self._symbol_locks: dict[str, asyncio.Lock] = {}
        self.episodes: dict[str, list[float]] = defaultdict(list)  # hid -> episode start times
        self.producer: AIOKafkaProducer | None = None
        self.tasks: list[asyncio.Task[Any]] = []
        self.stopping = asyncio.Event()
        self.clock0 = time.time()
        n_tick = households - 20
        for g in range(max(1, n_tick // GROUP_SIZE)):
            self.groups[f"EQ{g}"] = [f"hh-{g:02d}-{i:02d}" for i in range(GROUP_SIZE)]
        self.deposit_hids = [f"hh-dep-{i:02d}" for i in range(10)]
        self.loss_hids = [f"hh-loss-{i:02d}" for i in range(7)]
        self.control_hids = [f"hh-ctl-{i:02d}" for i in range(3)]

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def all_hids(self) -> list[str]:
        out = [h for hs in self.groups.values() for h in hs]
        return out + self.deposit_hids + self.loss_hids + self.control_hids

    # ------------------------------------------------------------------ wire

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=5,
            enable_idempotence=True,
            **FAILOVER_OPTIONS,
        )
        await self.producer.start()
        self.tasks.append(asyncio.create_task(self._consume()))

    async def stop(self) -> None:
        self.stopping.set()
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(BaseException):
                await t
        if self.producer is not None:
            await self.producer.stop()

    async def send(self, name: str, key: str, value: dict[str, Any]) -> None:
        """Send until acknowledged: a broker kill can outlast the producer's own retries. A
        retried send may land twice; every consumer here de-duplicates by id."""
        assert self.producer is not None
        deadline = time.monotonic() + SEND_DEADLINE_S
        while True:
            try:
                md = await self.producer.send_and_wait(
                    self.topic(name), orjson.dumps(value), key=key.encode()
                )
                self.sent_at[key].append(f"{name}/{md.partition}@{md.offset}")
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                self.send_retries += 1
                await asyncio.sleep(0.2)

    def now(self) -> float:
        return time.time() - self.clock0

    def symbol_lock(self, symbol: str) -> asyncio.Lock:
        lock = self._symbol_locks.get(symbol)
        if lock is None:
            lock = self._symbol_locks[symbol] = asyncio.Lock()
        return lock

    async def move(self, symbol: str, level: float, episode_hids: Sequence[str] = ()) -> None:
        """An episode's tick: the new level, then its tick, with no noise tick in between.

        Under the symbol's lock: a noise tick reads the level when it is sent, never before, so
        a stale noise tick at the old level can not follow the episode's tick (during a broker
        failover a send takes seconds; a stale tick there re-breached every household of the
        group after its rebalance: "6 rebalances for 4 breaches").
        """
        async with self.symbol_lock(symbol):
            self.level[symbol] = level
            for hid in episode_hids:
                self.episodes[hid].append(self.now())
            await self.tick(symbol, level)

    async def tick(self, symbol: str, value: float) -> None:
        await self.send(
            "prices",
            symbol,
            {
                "schema": "price/v1",
                "symbol": symbol,
                "price": round(value, 4),
                "ts": ts(self.now()),
            },
        )

    # ------------------------------------------------------------------ households

    async def load(self) -> None:
        snaps = []
        for g, (eq, hids) in enumerate(self.groups.items()):
            for hid in hids:
                snaps.append(household(hid, eq, f"FI{g}"))
        for hid in self.deposit_hids:
            snaps.append(household(hid, "DEQ", "DFI"))
        for hid in self.loss_hids:  # monitor mode while the manual trades are applied
            snaps.append(household(hid, "LEQ", "LFI", taxable_eq=30, alt="LALT", mode="monitor"))
        for hid in self.control_hids:
            snaps.append(household(hid, "LEQ", "LFI", taxable_eq=30, alt="LALT"))
        for s in snaps:
            self.book.load(s)
            for sym, sec in s["securities"].items():
                self.level.setdefault(sym, sec["price"])
            await self.send("households", s["household_id"], s)

    async def loss_sales(self, applied: Callable[[], Awaitable[bool]]) -> None:
        """Manual trades: the taxable LEQ sold at 100 (basis 150: a 1,500 loss), LALT bought,
        in monitor mode (no orders in between); then a rebalance-mode snapshot of the result
        without `recent_trades`: the loss is remembered only by the worker's state.

        The snapshot is sent once `applied()` says the workers have processed the fills:
        `fills` and `households` are different topics, so a snapshot sent after the fills may
        be read before them (the fills would then apply on top of it: a different household
        from the one this book expects)."""
        for hid in self.loss_hids:
            for i, (side, sym) in enumerate((("sell", "LEQ"), ("buy", "LALT"))):
                fill = {
                    "schema": "fill/v1",
                    "fill_id": f"{hid}-manual-{i}",
                    "order_id": f"{hid}-manual-{i}",
                    "household_id": hid,
                    "account_id": f"{hid}-TAX",
                    "symbol": sym,
                    "side": side,
                    "quantity": 30.0,
                    "price": 100.0,
                    "ts": ts(self.now()),
                }
                self.book.fill(fill)
                await self.send("fills", hid, fill)
        assert await applied(), "the manual fills were never processed"
        for hid in self.loss_hids:
            snap = household(hid, "LEQ", "LFI", taxable_eq=30, alt="LALT", swapped=True)
            self.book.load(snap)
            await self.send("households", hid, snap)

    # ------------------------------------------------------------------ OMS

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
            **FAILOVER_OPTIONS,
        )
        await consumer.start()
        try:
            names = (self.topic("orders"), self.topic("drift-alerts"))
            tps: list[TopicPartition] = []
            while not tps:
                md = await consumer._client.fetch_all_metadata()
                tps = [
                    TopicPartition(t, p)
                    for t in names
                    for p in sorted(md.partitions_for_topic(t) or ())
                ]
                if len(tps) < 2:
                    tps = []
                    await asyncio.sleep(0.2)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                try:
                    batch = await consumer.getmany(timeout_ms=100)
                except KafkaError:  # a leader moving; the fetcher refreshes its metadata
                    await asyncio.sleep(0.1)
                    continue
                for tp, records in batch.items():
                    for r in records:
                        value = orjson.loads(r.value)
                        worker = producer_of(r.headers)
                        if tp.topic == names[1]:
                            self.alerts.append(AlertSeen(self.now(), value, worker))
                        else:
                            await self._order(value, worker)
        finally:
            await consumer.stop()

    async def _order(self, rb: dict[str, Any], worker: str | None = None) -> None:
        self.orders.append(OrderSeen(self.now(), rb, worker))
        rid = rb["rebalance_id"]
        first = self.by_rebalance.get(rid)
        if first is not None:
            old = {o["order_id"]: o for o in first["orders"]}
            for o in rb["orders"]:
                if o["order_id"] in old and old[o["order_id"]] != o:
                    self.conflicts.append(f"{o['order_id']}: {old[o['order_id']]} != {o}")
            if {o["order_id"] for o in rb["orders"]} != set(old):
                self.conflicts.append(f"{rid}: different order sets")
            return
        self.by_rebalance[rid] = rb
        filler = asyncio.get_running_loop().create_task(self._fill(rb))
        self.tasks.append(filler)  # keep a reference (and cancel it on stop)

    async def _fill(self, rb: dict[str, Any]) -> None:
        await asyncio.sleep(0.05 + self.rng.random() * 0.15)  # the market takes a moment
        hid = rb["household_id"]
        for o in sorted(rb["orders"], key=lambda o: o["side"] != "sell"):
            if o["order_id"] in self.filled:
                continue
            fill = {
                "schema": "fill/v1",
                "fill_id": f"F-{o['order_id']}",
                "order_id": o["order_id"],
                "household_id": hid,
                "account_id": o["account_id"],
                "symbol": o["symbol"],
                "side": o["side"],
                "quantity": o["quantity"],
                "price": o["est_price"],
                "ts": ts(self.now()),
            }
            self.filled.add(o["order_id"])
            self.book.fill(fill)
            await self.send("fills", hid, fill)
        self.fill_sent_s[rb["rebalance_id"]] = self.now()

    # ------------------------------------------------------------------ episodes

    def rebalances_of(self, hid: str) -> list[dict[str, Any]]:
        return [rb for rb in self.by_rebalance.values() if rb["household_id"] == hid]

    def settled(self, hids: list[str], episodes: int) -> bool:
        """Every household has `episodes` rebalances, all filled."""
        for hid in hids:
            rbs = self.rebalances_of(hid)
            if len(rbs) < episodes or any(rb["rebalance_id"] not in self.fill_sent_s for rb in rbs):
                return False
        return True

    async def wait_settled(self, hids: list[str], episodes: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.settled(hids, episodes):
                return True
            await asyncio.sleep(0.1)
        return False

    async def tick_episodes(
        self, symbol: str, count: int, start_s: float, timeout_s: float = 45.0
    ) -> None:
        hids = self.groups[symbol]
        await asyncio.sleep(start_s)
        for k in range(count):
            await self.wait_settled(hids, k, timeout_s)
            await asyncio.sleep(0.4)  # let the last fills be applied
            factor = 1.5 if k % 2 == 0 else 1 / 1.5
            await self.move(symbol, self.level[symbol] * factor, hids)

    async def deposit_episodes(self, count: int, start_s: float, timeout_s: float = 45.0) -> None:
        await asyncio.sleep(start_s)
        for k in range(count):
            await self.wait_settled(self.deposit_hids, k, timeout_s)
            await asyncio.sleep(0.4)
            for hid in self.deposit_hids:
                flow = {
                    "schema": "cash_flow/v1",
                    "flow_id": f"{hid}-dep-{k}",
                    "household_id": hid,
                    "account_id": f"{hid}-TAX",
                    "kind": "deposit",
                    "amount": 2000.0,
                    "ts": ts(self.now()),
                }
                self.book.deposit(flow)
                self.episodes[hid].append(self.now())
                await self.send("cash-flows", hid, flow)

    async def loss_episode(self) -> None:
        """LEQ falls to 40: every loss/control household is below its equity band."""
        await self.move("LEQ", 40.0, self.loss_hids + self.control_hids)

    async def noise(self) -> None:
        while not self.stopping.is_set():
            for symbol in list(self.level):
                async with self.symbol_lock(symbol):  # the level now, not a stale copy
                    value = self.level[symbol] * (1 + self.rng.uniform(-0.002, 0.002))
                    await self.tick(symbol, value)
            await asyncio.sleep(self.noise_s)
