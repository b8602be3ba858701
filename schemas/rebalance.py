"""The solve result (`rebalance/v1`): orders with their lots and reasons, statuses, encoding."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .errors import Issue
from .reader import Reader, format_day, join

STATUSES = (
    "rebalanced",
    "no_action",
    "band_unreachable",
    "infeasible",
    "invalid_input",
    "solver_error",
)
REASONS = ("rebalance", "tax_loss_harvest", "raise_cash", "invest_cash", "screen")


@dataclass(frozen=True, slots=True)
class LotRelief:
    lot_id: str
    quantity: float


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    account_id: str
    symbol: str
    side: str
    quantity: float
    est_price: float
    est_value: float
    reason: str
    lots: tuple[LotRelief, ...] = ()


@dataclass(frozen=True, slots=True)
class Realized:
    short_term_gain: float = 0.0
    long_term_gain: float = 0.0
    tax_cost: float = 0.0


@dataclass(frozen=True, slots=True)
class RebalanceResult:
    household_id: str
    as_of: date | None
    rebalance_id: str
    status: str
    orders: tuple[Order, ...] = ()
    drift_before: dict[str, float] = field(default_factory=dict)
    drift_after: dict[str, float] = field(default_factory=dict)
    realized: Realized = field(default_factory=Realized)
    turnover: float = 0.0
    messages: tuple[str, ...] = ()
    errors: tuple[Issue, ...] = ()
    solve_ms: float = 0.0


#: The largest integer JSON encoders carry exactly (orjson refuses ints beyond 64 bits).
_MAX_WIRE_INT = 2**63 - 1


def _quantity(value: float) -> float:
    """A share count for the wire: an integer beyond 64 bits (1e24 of value bought at a price of
    1e-6, inside the input ranges) is written as a float rather than failing the encoding."""
    if isinstance(value, int) and abs(value) > _MAX_WIRE_INT:
        return float(value)
    return value


def order_to_json(o: Order) -> dict[str, Any]:
    out: dict[str, Any] = {
        "order_id": o.order_id,
        "account_id": o.account_id,
        "symbol": o.symbol,
        "side": o.side,
        "quantity": _quantity(o.quantity),
        "est_price": o.est_price,
        "est_value": o.est_value,
        "reason": o.reason,
    }
    if o.side == "sell":
        out["lots"] = [{"lot_id": x.lot_id, "quantity": _quantity(x.quantity)} for x in o.lots]
    return out


def result_to_json(res: RebalanceResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema": "rebalance/v1",
        "household_id": res.household_id,
        "as_of": format_day(res.as_of) if res.as_of else None,
        "rebalance_id": res.rebalance_id,
        "status": res.status,
        "orders": [order_to_json(o) for o in res.orders],
        "drift_before": dict(res.drift_before),
        "drift_after": dict(res.drift_after),
        "realized": {
            "short_term_gain": res.realized.short_term_gain,
            "long_term_gain": res.realized.long_term_gain,
            "tax_cost": res.realized.tax_cost,
        },
        "turnover": res.turnover,
        "messages": list(res.messages),
        "solve_ms": res.solve_ms,
    }
    if res.errors:
        out["errors"] = [e.to_json() for e in res.errors]
    return out


def parse_result(raw: Any) -> RebalanceResult:
    """Decode a `rebalance/v1` object (the OMS side and the worker's own state use this).

    An output message: its values are products of input numbers (a value of 1e12 shares at
    1e12), so they are held to finite only, not to the inputs' magnitude limit.
    """
    r = Reader(limit=None)
    obj = r.obj(raw, "")
    r.schema(obj, "rebalance")
    orders: list[Order] = []
    for i, raw_order in enumerate(r.array(obj, "orders", "")):
        path = f"orders[{i}]"
        o = r.obj(raw_order, path)
        orders.append(
            Order(
                order_id=r.string(o, "order_id", path),
                account_id=r.string(o, "account_id", path),
                symbol=r.string(o, "symbol", path),
                side=r.choice(o, "side", path, ("buy", "sell"), None),
                quantity=r.real(o, "quantity", path, exclusive_minimum=0.0),
                est_price=r.real(o, "est_price", path, exclusive_minimum=0.0),
                est_value=r.real(o, "est_value", path, minimum=0.0),
                reason=r.choice(o, "reason", path, REASONS, "rebalance"),
                lots=parse_lot_reliefs(r, o, path),
            )
        )
    realized = r.obj(obj.get("realized") or {}, "realized")
    as_of = obj.get("as_of")
    status = r.choice(obj, "status", "", STATUSES, None)
    # An invalid_input result may not know the household or have an id to give.
    ids_optional = status == "invalid_input"
    res = RebalanceResult(
        household_id=_identifier(r, obj, "household_id", optional=ids_optional),
        as_of=r.check_day(as_of, "as_of") if as_of is not None else None,
        rebalance_id=_identifier(r, obj, "rebalance_id", optional=ids_optional),
        status=status,
        orders=tuple(orders),
        drift_before=_drift(r, obj.get("drift_before"), "drift_before"),
        drift_after=_drift(r, obj.get("drift_after"), "drift_after"),
        realized=Realized(
            short_term_gain=r.real(realized, "short_term_gain", "realized", 0.0),
            long_term_gain=r.real(realized, "long_term_gain", "realized", 0.0),
            tax_cost=r.real(realized, "tax_cost", "realized", 0.0),
        ),
        turnover=r.real(obj, "turnover", "", 0.0),
        messages=_messages(r, obj.get("messages")),
        errors=_errors(r, obj.get("errors")),
        solve_ms=r.real(obj, "solve_ms", "", 0.0),
    )
    r.raise_if_any()
    return res


def stored_result(raw: dict[str, Any]) -> RebalanceResult:
    """A result the worker itself encoded (`result_to_json`) into its table state, read back
    without validation: the same `RebalanceResult` that `parse_result` makes of it (a
    property test holds the two together), in a quarter of the time. Only for values the
    product wrote; anything from outside goes through `parse_result`."""
    realized = raw.get("realized") or {}
    as_of = raw.get("as_of")
    return RebalanceResult(
        household_id=raw.get("household_id") or "",
        as_of=date.fromisoformat(as_of) if as_of is not None else None,
        rebalance_id=raw.get("rebalance_id") or "",
        status=raw["status"],
        orders=tuple(
            Order(
                o["order_id"],
                o["account_id"],
                o["symbol"],
                o["side"],
                float(o["quantity"]),
                float(o["est_price"]),
                float(o["est_value"]),
                o.get("reason") or "rebalance",
                tuple(LotRelief(x["lot_id"], float(x["quantity"])) for x in o.get("lots") or ()),
            )
            for o in raw.get("orders") or ()
        ),
        drift_before={k: float(v) for k, v in (raw.get("drift_before") or {}).items()},
        drift_after={k: float(v) for k, v in (raw.get("drift_after") or {}).items()},
        realized=Realized(
            _real(realized.get("short_term_gain")),
            _real(realized.get("long_term_gain")),
            _real(realized.get("tax_cost")),
        ),
        turnover=_real(raw.get("turnover")),
        messages=tuple(raw.get("messages") or ()),
        errors=tuple(Issue(e["path"], e["message"]) for e in raw.get("errors") or ()),
        solve_ms=_real(raw.get("solve_ms")),
    )


def _real(value: Any) -> float:
    return 0.0 if value is None else float(value)


def parse_lot_reliefs(r: Reader, obj: dict[str, Any], path: str) -> tuple[LotRelief, ...]:
    out: list[LotRelief] = []
    for j, raw in enumerate(r.array(obj, "lots", path)):
        lpath = join(join(path, "lots"), j)
        item = r.obj(raw, lpath)
        out.append(
            LotRelief(
                r.string(item, "lot_id", lpath),
                r.real(item, "quantity", lpath, exclusive_minimum=0.0),
            )
        )
    return tuple(out)


def _identifier(r: Reader, obj: dict[str, Any], key: str, *, optional: bool) -> str:
    value = obj.get(key)
    if optional and (value is None or value == ""):
        return ""
    return r.string(obj, key, "")


def _drift(r: Reader, raw: Any, path: str) -> dict[str, float]:
    if raw is None:
        return {}
    return {k: r.check_number(v, join(path, k)) for k, v in r.obj(raw, path).items()}


def _messages(r: Reader, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        r.fail("messages", "must be an array of strings")
        return ()
    out: list[str] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            out.append(item)
        else:
            r.fail(join("messages", i), "must be a string")
    return tuple(out)


def _errors(r: Reader, raw: Any) -> tuple[Issue, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        r.fail("errors", "must be an array of {path, message}")
        return ()
    out: list[Issue] = []
    for i, item_raw in enumerate(raw):
        epath = join("errors", i)
        item = r.obj(item_raw, epath)
        path, message = item.get("path"), item.get("message")
        if not isinstance(path, str):
            r.fail(join(epath, "path"), "must be a string")
        if not isinstance(message, str) or not message:
            r.fail(join(epath, "message"), "must be a non-empty string")
        if isinstance(path, str) and isinstance(message, str):
            out.append(Issue(path, message))
    return tuple(out)
