"""Stream events (contract section 4): prices, fills, cash flows, securities, alerts, dead letters.

Each event is a frozen record with a `parse_*` (validates a decoded JSON value, collecting every
issue with its JSON path) and a `*_to_json` (always writes `"schema"`). Timestamps are ISO-8601 UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .household import Security, parse_security, security_to_json
from .reader import MAX_ABS, MIN_PRICE, Reader, format_timestamp
from .rebalance import LotRelief, parse_lot_reliefs

SIDES = ("buy", "sell")
FLOW_KINDS = ("deposit", "withdrawal_request", "withdrawal")
ALERT_ACTIONS = (
    "rebalance_submitted",
    "guardrail_breach",
    "band_unreachable",
    "monitor_only",
    "pending_orders",
    "awaiting_prices",
)


@dataclass(frozen=True, slots=True)
class Price:
    symbol: str
    price: float
    ts: datetime


@dataclass(frozen=True, slots=True)
class Fill:
    fill_id: str
    order_id: str
    household_id: str
    account_id: str
    symbol: str
    side: str
    quantity: float
    price: float
    ts: datetime
    lots: tuple[LotRelief, ...] = ()


@dataclass(frozen=True, slots=True)
class CashFlow:
    flow_id: str
    household_id: str
    account_id: str
    kind: str
    amount: float
    ts: datetime
    settles: str | None = None


@dataclass(frozen=True, slots=True)
class Breach:
    asset_class: str
    weight: float
    target: float
    tolerance: float


@dataclass(frozen=True, slots=True)
class DriftAlert:
    household_id: str
    ts: datetime
    max_abs_drift: float
    breaches: tuple[Breach, ...]
    action: str
    # held symbols without a known price (action `awaiting_prices`); empty otherwise
    missing_prices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str
    error: str
    ts: datetime


# --------------------------------------------------------------------------- parsing


def _start(raw: Any, name: str, *, limit: float | None = MAX_ABS) -> tuple[Reader, dict[str, Any]]:
    """A reader for one message; input messages hold every number to the contract's range,
    the rebalancer's own outputs (alerts, dead letters) only to finite."""
    r = Reader(limit=limit)
    obj = r.obj(raw, "")
    r.schema(obj, name)
    return r, obj


def _integer(r: Reader, obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        r.fail(key, "must be an integer")
        return 0
    return value


def parse_price(raw: Any) -> Price:
    r, obj = _start(raw, "price")
    out = Price(
        symbol=r.string(obj, "symbol", ""),
        price=r.real(obj, "price", "", minimum=MIN_PRICE),
        ts=r.timestamp(obj, "ts", ""),
    )
    r.raise_if_any()
    return out


def parse_fill(raw: Any) -> Fill:
    r, obj = _start(raw, "fill")
    out = Fill(
        fill_id=r.string(obj, "fill_id", ""),
        order_id=r.string(obj, "order_id", ""),
        household_id=r.string(obj, "household_id", ""),
        account_id=r.string(obj, "account_id", ""),
        symbol=r.string(obj, "symbol", ""),
        side=r.choice(obj, "side", "", SIDES, None),
        quantity=r.real(obj, "quantity", "", exclusive_minimum=0.0),
        price=r.real(obj, "price", "", minimum=MIN_PRICE),
        ts=r.timestamp(obj, "ts", ""),
        lots=parse_lot_reliefs(r, obj, ""),
    )
    if obj.get("side") == "buy" and out.lots:
        r.fail("lots", "only a sell fill names lots")
    r.raise_if_any()
    return out


def parse_cash_flow(raw: Any) -> CashFlow:
    r, obj = _start(raw, "cash_flow")
    settles = obj.get("settles")
    if settles is not None and (not isinstance(settles, str) or not settles):
        r.fail("settles", "must be a non-empty string (the flow_id of a withdrawal_request)")
        settles = None
    out = CashFlow(
        flow_id=r.string(obj, "flow_id", ""),
        household_id=r.string(obj, "household_id", ""),
        account_id=r.string(obj, "account_id", ""),
        kind=r.choice(obj, "kind", "", FLOW_KINDS, None),
        amount=r.real(obj, "amount", "", exclusive_minimum=0.0),
        ts=r.timestamp(obj, "ts", ""),
        settles=settles,
    )
    if out.settles is not None and obj.get("kind") in ("deposit", "withdrawal_request"):
        r.fail("settles", "only a withdrawal settles a request")
    r.raise_if_any()
    return out


def parse_security_event(raw: Any) -> Security:
    """A `security/v1` message: the security master's record (no price) keyed by symbol."""
    r, obj = _start(raw, "security")
    symbol = r.string(obj, "symbol", "")
    out = parse_security(r, obj, "", symbol, price_required=False)
    r.raise_if_any()
    return out


def parse_drift_alert(raw: Any) -> DriftAlert:
    r, obj = _start(raw, "drift_alert", limit=None)
    breaches: list[Breach] = []
    for i, item_raw in enumerate(r.array(obj, "breaches", "", required=True)):
        path = f"breaches[{i}]"
        item = r.obj(item_raw, path)
        breaches.append(
            Breach(
                asset_class=r.string(item, "asset_class", path),
                weight=r.real(item, "weight", path),
                target=r.real(item, "target", path, minimum=0.0),
                tolerance=r.real(item, "tolerance", path, minimum=0.0),
            )
        )
    out = DriftAlert(
        household_id=r.string(obj, "household_id", ""),
        ts=r.timestamp(obj, "ts", ""),
        max_abs_drift=r.real(obj, "max_abs_drift", "", minimum=0.0),
        breaches=tuple(breaches),
        action=r.choice(obj, "action", "", ALERT_ACTIONS, None),
        missing_prices=r.strings(obj.get("missing_prices"), "missing_prices"),
    )
    r.raise_if_any()
    return out


def parse_dead_letter(raw: Any) -> DeadLetter:
    r, obj = _start(raw, "dead_letter", limit=None)
    key = obj.get("key")
    if key is not None and not isinstance(key, str):
        r.fail("key", "must be a string or null")
        key = None
    value = obj.get("value")
    if not isinstance(value, str):
        r.fail("value", "must be a string")
        value = ""
    out = DeadLetter(
        topic=r.string(obj, "topic", ""),
        partition=_integer(r, obj, "partition"),
        offset=_integer(r, obj, "offset"),
        key=key,
        value=value,
        error=r.string(obj, "error", ""),
        ts=r.timestamp(obj, "ts", ""),
    )
    r.raise_if_any()
    return out


# --------------------------------------------------------------------------- encoding


def price_to_json(p: Price) -> dict[str, Any]:
    return {
        "schema": "price/v1",
        "symbol": p.symbol,
        "price": p.price,
        "ts": format_timestamp(p.ts),
    }


def fill_to_json(f: Fill) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema": "fill/v1",
        "fill_id": f.fill_id,
        "order_id": f.order_id,
        "household_id": f.household_id,
        "account_id": f.account_id,
        "symbol": f.symbol,
        "side": f.side,
        "quantity": f.quantity,
        "price": f.price,
        "ts": format_timestamp(f.ts),
    }
    if f.lots:
        out["lots"] = [{"lot_id": x.lot_id, "quantity": x.quantity} for x in f.lots]
    return out


def cash_flow_to_json(c: CashFlow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema": "cash_flow/v1",
        "flow_id": c.flow_id,
        "household_id": c.household_id,
        "account_id": c.account_id,
        "kind": c.kind,
        "amount": c.amount,
        "ts": format_timestamp(c.ts),
    }
    if c.settles is not None:
        out["settles"] = c.settles
    return out


def security_event_to_json(sec: Security) -> dict[str, Any]:
    body = security_to_json(sec)
    body.pop("price", None)
    return {"schema": "security/v1", "symbol": sec.symbol, **body}


def drift_alert_to_json(a: DriftAlert) -> dict[str, Any]:
    return {
        "schema": "drift_alert/v1",
        "household_id": a.household_id,
        "ts": format_timestamp(a.ts),
        "max_abs_drift": a.max_abs_drift,
        "breaches": [
            {
                "asset_class": b.asset_class,
                "weight": b.weight,
                "target": b.target,
                "tolerance": b.tolerance,
            }
            for b in a.breaches
        ],
        "action": a.action,
        **({"missing_prices": list(a.missing_prices)} if a.missing_prices else {}),
    }


def dead_letter_to_json(d: DeadLetter) -> dict[str, Any]:
    return {
        "schema": "dead_letter/v1",
        "topic": d.topic,
        "partition": d.partition,
        "offset": d.offset,
        "key": d.key,
        "value": d.value,
        "error": d.error,
        "ts": format_timestamp(d.ts),
    }
