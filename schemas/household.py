"""The household snapshot (`household/v1`): records, parsing with full validation, encoding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import date
from operator import attrgetter
from typing import Annotated, Any

import msgspec

from .reader import MAX_ABS, MIN_PRICE, Reader, format_day, join

MODES = ("rebalance", "guardrail", "monitor")
ACCOUNT_TYPES = ("taxable", "tax_deferred", "tax_exempt")
CASH = "cash"
WEIGHT_SUM_TOLERANCE = 1e-6


def canonical(mapping: dict[str, Any]) -> dict[str, Any]:
    """The mapping with its keys in sorted order.

    The keys of the snapshot's maps (`securities`, `target`, `buy_list`, `location`, `exposures`,
    band `overrides`) have no order in the contract ("the same answer whatever the order of its
    JSON object keys"); every record keeps them sorted, so the solver sees one form of a household
    however it was written or built.
    """
    return dict(sorted(mapping.items()))


def _canonicalise(record: Any, *names: str) -> None:
    for name in names:
        object.__setattr__(record, name, canonical(getattr(record, name)))


MAX_COST_BPS = 1000.0
MAX_TAX_BUDGET_BPS = 10_000.0


# The lot's constraints in msgspec's terms, read when `schemas.typed` decodes lots straight into
# `Lot`: the tests of `plain_lot` (a non-empty id and symbol, a quantity in (0, MAX_ABS], a
# basis in [0, MAX_ABS], a YYYY-MM-DD day, a boolean `locked`). To a type checker they are str
# and float.
_Name = Annotated[str, msgspec.Meta(min_length=1)]
_Quantity = Annotated[float, msgspec.Meta(gt=0.0, le=MAX_ABS)]
_Basis = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_ABS)]


@dataclass(frozen=True, slots=True)
class Lot:
    lot_id: _Name
    symbol: _Name
    quantity: _Quantity
    cost_basis: _Basis
    acquired: date
    locked: bool = False

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Pickled as its field values (solves go to other processes lot by lot): the frozen
        # slots dataclass's default pickling asks `fields()` of every lot, several times over.
        return new_lot, lot_values(self)


def _slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Any, ...]:
    """The slot descriptors' setters of a frozen slots dataclass, in `names` order, checked to
    be every field (a field added later must be added to the fast constructor too)."""
    if tuple(f.name for f in fields(cls)) != names:
        raise TypeError(f"{cls.__name__}'s fields are not {names}")
    return tuple(cls.__dict__[name].__set__ for name in names)


LOT_FIELDS = ("lot_id", "symbol", "quantity", "cost_basis", "acquired", "locked")
_SET_LOT_ID, _SET_SYMBOL, _SET_QUANTITY, _SET_BASIS, _SET_ACQUIRED, _SET_LOCKED = _slot_setters(
    Lot, LOT_FIELDS
)
#: A lot's field values in `LOT_FIELDS` order, the arguments of `new_lot`.
lot_values: Callable[[Lot], tuple[Any, ...]] = attrgetter(*LOT_FIELDS)


def new_lot(
    lot_id: str, symbol: str, quantity: float, cost_basis: float, acquired: date, locked: bool
) -> Lot:
    """Lot(...) without the frozen dataclass's __init__ (half its time: a household's
    lots are most of what is decoded, and unpickled); the same object, every field set."""
    lot: Lot = object.__new__(Lot)
    _SET_LOT_ID(lot, lot_id)
    _SET_SYMBOL(lot, symbol)
    _SET_QUANTITY(lot, quantity)
    _SET_BASIS(lot, cost_basis)
    _SET_ACQUIRED(lot, acquired)
    _SET_LOCKED(lot, locked)
    return lot


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    type: str
    cash: float = 0.0
    cash_needed: float = 0.0
    lots: tuple[Lot, ...] = ()
    buy_list: dict[str, tuple[str, ...]] = field(default_factory=dict)
    no_buy_asset_classes: tuple[str, ...] = ()
    excluded_symbols: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _canonicalise(self, "buy_list")


@dataclass(frozen=True, slots=True)
class Security:
    """A security; `exposures` is always filled (a plain `asset_class` becomes {class: 1.0})."""

    symbol: str
    exposures: dict[str, float]
    price: float | None = None
    wash_group: str = ""
    fractional: bool = True
    asset_class: str | None = None

    def __post_init__(self) -> None:
        _canonicalise(self, "exposures")

    @property
    def group(self) -> str:
        return self.wash_group or self.symbol


@dataclass(frozen=True, slots=True)
class BandRule:
    absolute: float | None = None
    relative: float | None = None
    floor: float | None = None


@dataclass(frozen=True, slots=True)
class Bands:
    absolute: float = 0.05
    relative: float = 0.25
    floor: float = 0.005
    overrides: dict[str, BandRule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _canonicalise(self, "overrides")

    def tolerance(self, asset_class: str, target: float) -> float:
        """max(floor, min(absolute, relative * target)), each part overridable per class."""
        rule = self.overrides.get(asset_class, BandRule())
        absolute = self.absolute if rule.absolute is None else rule.absolute
        relative = self.relative if rule.relative is None else rule.relative
        floor = self.floor if rule.floor is None else rule.floor
        return max(floor, min(absolute, relative * target))


@dataclass(frozen=True, slots=True)
class TaxRates:
    short_term_rate: float = 0.408
    long_term_rate: float = 0.238


@dataclass(frozen=True, slots=True)
class Options:
    min_trade_value: float = 0.0
    allow_cross_account_swaps: bool = False
    harvest_losses: bool = False
    harvest_min_loss: float = 500.0
    max_realized_gain: float | None = None
    transaction_cost_bps: float = 0.0
    max_realized_gain_year: float | None = None
    allow_sells: bool = True
    max_turnover: float | None = None
    defer_short_term_days: int = 0
    target_tax_budget_bps: float = 0.0


@dataclass(frozen=True, slots=True)
class YearRealized:
    """Gains already realized in the household's taxable accounts in the calendar year of as_of."""

    short_term_gain: float = 0.0
    long_term_gain: float = 0.0

    @property
    def net(self) -> float:
        return self.short_term_gain + self.long_term_gain


@dataclass(frozen=True, slots=True)
class RecentTrade:
    account_id: str
    symbol: str
    side: str
    quantity: float
    date: date
    realized_gain: float | None = None


@dataclass(frozen=True, slots=True)
class Household:
    household_id: str
    as_of: date
    target: dict[str, float]
    accounts: tuple[Account, ...]
    securities: dict[str, Security] = field(default_factory=dict)
    mode: str = "rebalance"
    bands: Bands = field(default_factory=Bands)
    tax: TaxRates = field(default_factory=TaxRates)
    buy_list: dict[str, tuple[str, ...]] = field(default_factory=dict)
    location: dict[str, tuple[str, ...]] = field(default_factory=dict)
    options: Options = field(default_factory=Options)
    recent_trades: tuple[RecentTrade, ...] = ()
    realized_this_year: YearRealized = field(default_factory=YearRealized)

    def __post_init__(self) -> None:
        _canonicalise(self, "target", "securities", "buy_list", "location")

    def with_prices(self, prices: dict[str, float]) -> Household:
        """A copy whose securities carry the given prices (symbols not named keep theirs)."""
        securities = {
            s: replace(sec, price=prices.get(s, sec.price)) for s, sec in self.securities.items()
        }
        return replace(self, securities=securities)

    def account(self, account_id: str) -> Account | None:
        return next((a for a in self.accounts if a.account_id == account_id), None)


# --------------------------------------------------------------------------- parsing


def parse_security(
    r: Reader, raw: Any, path: str, symbol: str, *, price_required: bool
) -> Security:
    obj = r.obj(raw, path)
    price = r.number(obj, "price", path, None, minimum=MIN_PRICE, nullable=not price_required)
    asset_class = obj.get("asset_class")
    exposures_raw = obj.get("exposures")
    exposures: dict[str, float] = {}
    if asset_class is not None and exposures_raw is not None:
        r.fail(path, "give either asset_class or exposures, not both")
    if asset_class is not None:
        if isinstance(asset_class, str) and asset_class:
            exposures = {asset_class: 1.0}
        else:
            r.fail(join(path, "asset_class"), "must be a non-empty string")
    elif exposures_raw is not None:
        before = len(r.issues)
        exposures = parse_weights(r, exposures_raw, join(path, "exposures"))
        if not exposures and len(r.issues) == before:
            r.fail(join(path, "exposures"), "must name at least one asset class")
        elif len(r.issues) == before and abs(sum(exposures.values()) - 1.0) > WEIGHT_SUM_TOLERANCE:
            r.fail(join(path, "exposures"), f"must sum to 1 (sum is {sum(exposures.values()):.6g})")
    else:
        r.fail(path, "needs asset_class or exposures")
    wash_group = obj.get("wash_group")
    if wash_group is None:
        wash_group = symbol
    elif not isinstance(wash_group, str) or not wash_group:
        r.fail(join(path, "wash_group"), "must be a non-empty string")
        wash_group = symbol
    return Security(
        symbol=symbol,
        exposures=exposures,
        price=price,
        wash_group=wash_group,
        fractional=r.boolean(obj, "fractional", path, True),
        asset_class=asset_class if isinstance(asset_class, str) else None,
    )


def parse_weights(r: Reader, raw: Any, path: str) -> dict[str, float]:
    obj = r.obj(raw, path)
    out: dict[str, float] = {}
    for key, value in obj.items():
        out[key] = r.check_number(value, path, key, minimum=0.0, maximum=1.0)
    return out


def parse_lists(r: Reader, raw: Any, path: str) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    obj = r.obj(raw, path)
    return {key: r.strings(value, join(path, key)) for key, value in obj.items()}


def parse_bands(r: Reader, raw: Any, path: str) -> Bands:
    if raw is None:
        return Bands()
    obj = r.obj(raw, path)
    overrides: dict[str, BandRule] = {}
    raw_overrides = obj.get("overrides") or {}
    for cls, rule_raw in r.obj(raw_overrides, join(path, "overrides")).items():
        rpath = join(join(path, "overrides"), cls)
        rule = r.obj(rule_raw, rpath)
        overrides[cls] = BandRule(
            absolute=r.number(
                rule, "absolute", rpath, None, minimum=0.0, maximum=1.0, nullable=True
            ),
            relative=r.number(
                rule, "relative", rpath, None, minimum=0.0, maximum=1.0, nullable=True
            ),
            floor=r.number(rule, "floor", rpath, None, minimum=0.0, maximum=1.0, nullable=True),
        )
    return Bands(
        absolute=r.real(obj, "absolute", path, 0.05, minimum=0.0, maximum=1.0),
        relative=r.real(obj, "relative", path, 0.25, minimum=0.0, maximum=1.0),
        floor=r.real(obj, "floor", path, 0.005, minimum=0.0, maximum=1.0),
        overrides=overrides,
    )


def parse_options(r: Reader, raw: Any, path: str) -> Options:
    if raw is None:
        return Options()
    obj = r.obj(raw, path)
    return Options(
        min_trade_value=r.real(obj, "min_trade_value", path, 0.0, minimum=0.0),
        allow_cross_account_swaps=r.boolean(obj, "allow_cross_account_swaps", path, False),
        harvest_losses=r.boolean(obj, "harvest_losses", path, False),
        harvest_min_loss=r.real(obj, "harvest_min_loss", path, 500.0, minimum=0.0),
        max_realized_gain=r.number(
            obj, "max_realized_gain", path, None, minimum=0.0, nullable=True
        ),
        transaction_cost_bps=r.real(
            obj, "transaction_cost_bps", path, 0.0, minimum=0.0, maximum=MAX_COST_BPS
        ),
        max_realized_gain_year=r.number(
            obj, "max_realized_gain_year", path, None, minimum=0.0, nullable=True
        ),
        allow_sells=r.boolean(obj, "allow_sells", path, True),
        max_turnover=r.number(
            obj, "max_turnover", path, None, minimum=0.0, maximum=1.0, nullable=True
        ),
        defer_short_term_days=r.integer(obj, "defer_short_term_days", path, 0, minimum=0),
        target_tax_budget_bps=r.real(
            obj, "target_tax_budget_bps", path, 0.0, minimum=0.0, maximum=MAX_TAX_BUDGET_BPS
        ),
    )


def parse_year_realized(r: Reader, raw: Any, path: str) -> YearRealized:
    if raw is None:
        return YearRealized()
    obj = r.obj(raw, path)
    return YearRealized(
        short_term_gain=r.real(obj, "short_term_gain", path, 0.0),
        long_term_gain=r.real(obj, "long_term_gain", path, 0.0),
    )


def plain_lot(r: Reader, raw: Any) -> Lot | None:
    """The common case of `parse_lot` without paths or issues: the Lot when every field is
    valid, else None (then `parse_lot` names each problem). Both accept exactly the same lots:
    the same tests, in the Reader's own terms."""
    if not isinstance(raw, dict):
        return None
    lot_id, symbol = raw.get("lot_id"), raw.get("symbol")
    quantity, basis = raw.get("quantity"), raw.get("cost_basis")
    locked = raw.get("locked", False)
    if locked is None:
        locked = False
    if (
        isinstance(lot_id, str)
        and lot_id
        and isinstance(symbol, str)
        and symbol
        and r.plain_number(quantity)
        and quantity > 0.0
        and r.plain_number(basis)
        and basis >= 0.0
        and type(locked) is bool
    ):
        acquired = r.valid_day(raw.get("acquired"))
        if acquired is not None:
            return new_lot(lot_id, symbol, float(quantity), float(basis), acquired, locked)
    return None


def parse_lot(r: Reader, raw: Any, path: str) -> Lot:
    obj = r.obj(raw, path)
    return Lot(
        lot_id=r.string(obj, "lot_id", path),
        symbol=r.string(obj, "symbol", path),
        quantity=r.real(obj, "quantity", path, exclusive_minimum=0.0),
        cost_basis=r.real(obj, "cost_basis", path, minimum=0.0),
        acquired=r.day(obj, "acquired", path),
        locked=r.boolean(obj, "locked", path, False),
    )


def parse_account(r: Reader, raw: Any, path: str) -> Account:
    obj = r.obj(raw, path)
    lots = tuple(
        # a Lot already: decoded and checked by schemas.typed (JSON itself never gives one)
        lot
        if type(lot) is Lot
        else plain_lot(r, lot) or parse_lot(r, lot, join(join(path, "lots"), i))
        for i, lot in enumerate(r.array(obj, "lots", path))
    )
    return Account(
        account_id=r.string(obj, "account_id", path),
        type=r.choice(obj, "type", path, ACCOUNT_TYPES, None),
        cash=r.real(obj, "cash", path, 0.0, minimum=0.0),
        cash_needed=r.real(obj, "cash_needed", path, 0.0, minimum=0.0),
        lots=lots,
        buy_list=parse_lists(r, obj.get("buy_list"), join(path, "buy_list")),
        no_buy_asset_classes=r.strings(
            obj.get("no_buy_asset_classes"), join(path, "no_buy_asset_classes")
        ),
        excluded_symbols=r.strings(obj.get("excluded_symbols"), join(path, "excluded_symbols")),
    )


def parse_recent_trade(r: Reader, raw: Any, path: str) -> RecentTrade:
    obj = r.obj(raw, path)
    return RecentTrade(
        account_id=r.string(obj, "account_id", path),
        symbol=r.string(obj, "symbol", path),
        side=r.choice(obj, "side", path, ("buy", "sell"), None),
        quantity=r.real(obj, "quantity", path, exclusive_minimum=0.0),
        date=r.day(obj, "date", path),
        realized_gain=r.number(obj, "realized_gain", path, None, nullable=True),
    )


def parse_securities(
    r: Reader, raw: Any, path: str, *, price_required: bool
) -> dict[str, Security]:
    if raw is None:
        return {}
    obj = r.obj(raw, path)
    return {
        symbol: parse_security(r, value, join(path, symbol), symbol, price_required=price_required)
        for symbol, value in obj.items()
    }


def parse_target(r: Reader, raw: Any) -> dict[str, float]:
    if raw is None:
        r.fail("target", "is required")
        return {}
    before = len(r.issues)
    target = parse_weights(r, raw, "target")
    if len(r.issues) > before:
        pass  # a bad weight or a non-object: its own issue says so; the sum would only mislead
    elif not target:
        r.fail("target", "must name at least one asset class")
    elif abs(sum(target.values()) - 1.0) > WEIGHT_SUM_TOLERANCE:
        r.fail("target", f"weights must sum to 1 (sum is {sum(target.values()):.6g})")
    return target


def check_references(
    r: Reader, h: Household, *, prices_required: bool, acquired_by_as_of: bool = True
) -> None:
    """Cross-field rules: unique account ids, lot ids unique in the household, lots acquired by
    `as_of`, every held symbol known (and priced for a solve)."""
    check_acquired = acquired_by_as_of and h.as_of != date.min
    if _references_hold(h, prices_required, check_acquired):
        return
    seen: set[str] = set()
    lot_places: dict[str, tuple[int, int]] = {}  # lot id -> (account, lot) where first seen
    for i, account in enumerate(h.accounts):
        if account.account_id in seen:
            r.fail(f"accounts[{i}].account_id", f"duplicate account id {account.account_id!r}")
        seen.add(account.account_id)
        for j, lot in enumerate(account.lots):
            if lot.lot_id:
                first = lot_places.setdefault(lot.lot_id, (i, j))
                if first != (i, j):
                    r.fail(
                        f"accounts[{i}].lots[{j}].lot_id",
                        f"duplicate lot id {lot.lot_id!r} (also at accounts[{first[0]}].lots"
                        f"[{first[1]}]); lot ids are unique within the household",
                    )
            if check_acquired and lot.acquired != date.min and lot.acquired > h.as_of:
                r.fail(
                    f"accounts[{i}].lots[{j}].acquired",
                    f"must be on or before as_of ({format_day(h.as_of)}), "
                    f"got {format_day(lot.acquired)}",
                )
            if not lot.symbol:
                continue  # already reported as missing
            sec = h.securities.get(lot.symbol)
            if sec is None and (prices_required or h.securities):
                r.fail(
                    f"accounts[{i}].lots[{j}].symbol",
                    f"security {lot.symbol!r} is not in securities",
                )
            elif sec is not None and sec.price is None and prices_required:
                r.fail(f"accounts[{i}].lots[{j}].symbol", f"security {lot.symbol!r} has no price")


def _references_hold(h: Household, prices_required: bool, check_acquired: bool) -> bool:
    """Whether `check_references` would find nothing, tested per household instead of per
    lot (the common case; when this says no, the full pass names each problem)."""
    ids = {a.account_id for a in h.accounts}
    if len(ids) != len(h.accounts):
        return False
    lots = [lot for a in h.accounts for lot in a.lots]
    lot_ids = {lot.lot_id for lot in lots}
    if len(lot_ids) != len(lots) or "" in lot_ids:
        return False
    if check_acquired and any(lot.acquired > h.as_of for lot in lots):
        return False
    for symbol in {lot.symbol for lot in lots}:
        sec = h.securities.get(symbol)
        if not symbol or (sec is None and (prices_required or h.securities)):
            return False
        if sec is not None and sec.price is None and prices_required:
            return False
    return True


def parse_household(
    raw: Any, *, prices_required: bool = True, acquired_by_as_of: bool = True
) -> Household:
    """Validate a decoded `household/v1` object; raises ValidationError listing every problem.

    `prices_required` is False for snapshots on the `households` topic, whose securities map may be
    omitted (prices then come from the `prices` topic). `acquired_by_as_of` is False only for the
    worker's own stored state: its household keeps the snapshot's `as_of` while buy fills of later
    event days add lots acquired after it (the solver always sees the event day as `as_of`).
    """
    r = Reader()
    obj = r.obj(raw, "")
    r.schema(obj, "household")
    accounts_raw = r.array(obj, "accounts", "", required=True)
    if "accounts" in obj and isinstance(obj["accounts"], list) and not accounts_raw:
        r.fail("accounts", "must list at least one account")
    household = Household(
        household_id=r.string(obj, "household_id", ""),
        as_of=r.day(obj, "as_of", ""),
        mode=r.choice(obj, "mode", "", MODES, "rebalance"),
        target=parse_target(r, obj.get("target")),
        bands=parse_bands(r, obj.get("bands"), "bands"),
        tax=parse_tax(r, obj.get("tax")),
        buy_list=parse_lists(r, obj.get("buy_list"), "buy_list"),
        location=parse_location(r, obj.get("location")),
        options=parse_options(r, obj.get("options"), "options"),
        accounts=tuple(parse_account(r, a, f"accounts[{i}]") for i, a in enumerate(accounts_raw)),
        securities=parse_securities(
            r, obj.get("securities"), "securities", price_required=prices_required
        ),
        recent_trades=tuple(
            parse_recent_trade(r, t, f"recent_trades[{i}]")
            for i, t in enumerate(r.array(obj, "recent_trades", ""))
        ),
        realized_this_year=parse_year_realized(
            r, obj.get("realized_this_year"), "realized_this_year"
        ),
    )
    check_references(
        r, household, prices_required=prices_required, acquired_by_as_of=acquired_by_as_of
    )
    r.raise_if_any()
    return household


def parse_tax(r: Reader, raw: Any) -> TaxRates:
    if raw is None:
        return TaxRates()
    obj = r.obj(raw, "tax")
    return TaxRates(
        short_term_rate=r.real(obj, "short_term_rate", "tax", 0.408, minimum=0.0, maximum=1.0),
        long_term_rate=r.real(obj, "long_term_rate", "tax", 0.238, minimum=0.0, maximum=1.0),
    )


def parse_location(r: Reader, raw: Any) -> dict[str, tuple[str, ...]]:
    location = parse_lists(r, raw, "location")
    for cls, types in location.items():
        for i, t in enumerate(types):
            if t not in ACCOUNT_TYPES:
                r.fail(f"location.{cls}[{i}]", f"must be one of {', '.join(ACCOUNT_TYPES)}")
    return location


# --------------------------------------------------------------------------- encoding


def security_to_json(sec: Security) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if sec.price is not None:
        out["price"] = sec.price
    if sec.asset_class is not None:
        out["asset_class"] = sec.asset_class
    else:
        out["exposures"] = dict(sec.exposures)
    out["wash_group"] = sec.group
    out["fractional"] = sec.fractional
    return out


def household_to_json(h: Household) -> dict[str, Any]:
    """The `household/v1` object for a Household; parse_household(household_to_json(h)) == h."""
    bands: dict[str, Any] = {
        "absolute": h.bands.absolute,
        "relative": h.bands.relative,
        "floor": h.bands.floor,
        "overrides": {
            c: {
                k: v
                for k, v in (("absolute", o.absolute), ("relative", o.relative), ("floor", o.floor))
                if v is not None
            }
            for c, o in h.bands.overrides.items()
        },
    }
    o = h.options
    return {
        "schema": "household/v1",
        "household_id": h.household_id,
        "as_of": format_day(h.as_of),
        "mode": h.mode,
        "target": dict(h.target),
        "bands": bands,
        "tax": {"short_term_rate": h.tax.short_term_rate, "long_term_rate": h.tax.long_term_rate},
        "buy_list": {c: list(s) for c, s in h.buy_list.items()},
        "location": {c: list(t) for c, t in h.location.items()},
        "options": {
            "min_trade_value": o.min_trade_value,
            "allow_cross_account_swaps": o.allow_cross_account_swaps,
            "harvest_losses": o.harvest_losses,
            "harvest_min_loss": o.harvest_min_loss,
            "max_realized_gain": o.max_realized_gain,
            "transaction_cost_bps": o.transaction_cost_bps,
            "max_realized_gain_year": o.max_realized_gain_year,
            "allow_sells": o.allow_sells,
            "max_turnover": o.max_turnover,
            "defer_short_term_days": o.defer_short_term_days,
            "target_tax_budget_bps": o.target_tax_budget_bps,
        },
        "accounts": [account_to_json(a) for a in h.accounts],
        "securities": {s: security_to_json(sec) for s, sec in h.securities.items()},
        "recent_trades": [
            {
                "account_id": t.account_id,
                "symbol": t.symbol,
                "side": t.side,
                "quantity": t.quantity,
                "date": format_day(t.date),
                **({"realized_gain": t.realized_gain} if t.realized_gain is not None else {}),
            }
            for t in h.recent_trades
        ],
        "realized_this_year": {
            "short_term_gain": h.realized_this_year.short_term_gain,
            "long_term_gain": h.realized_this_year.long_term_gain,
        },
    }


def account_to_json(a: Account) -> dict[str, Any]:
    return {
        "account_id": a.account_id,
        "type": a.type,
        "cash": a.cash,
        "cash_needed": a.cash_needed,
        "lots": [
            {
                "lot_id": lot.lot_id,
                "symbol": lot.symbol,
                "quantity": lot.quantity,
                "cost_basis": lot.cost_basis,
                "acquired": format_day(lot.acquired),
                **({"locked": True} if lot.locked else {}),
            }
            for lot in a.lots
        ],
        "buy_list": {c: list(s) for c, s in a.buy_list.items()},
        "no_buy_asset_classes": list(a.no_buy_asset_classes),
        "excluded_symbols": list(a.excluded_symbols),
    }
