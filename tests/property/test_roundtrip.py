"""decode(encode(x)) == x on the wire: households, rebalance results, timestamps.

Each value goes through bytes (orjson) both ways, and every encoding validates against its JSON
Schema, so the encoders, the parsers and the schema files are checked against one another.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from schemas import (
    ACCOUNT_TYPES,
    MODES,
    REASONS,
    STATUSES,
    Account,
    BandRule,
    Bands,
    Household,
    Issue,
    Lot,
    LotRelief,
    Options,
    Order,
    Realized,
    RebalanceResult,
    RecentTrade,
    Security,
    TaxRates,
    YearRealized,
    dumps,
    household_to_json,
    loads,
    parse_household,
    parse_result,
    result_to_json,
    stored_result,
)
from schemas.json_schemas import load_schema
from schemas.reader import Reader, format_timestamp

HOUSEHOLD_SCHEMA = Draft202012Validator(load_schema("household"))
REBALANCE_SCHEMA = Draft202012Validator(load_schema("rebalance"))
CLASSES = ("us_equity", "intl_equity", "fixed_income", "cash", "real_estate")

# Text that JSON can carry (no lone surrogates), ids non-empty.
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
IDS = st.text(st.characters(codec="utf-8"), min_size=1, max_size=10)
MONEY = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)
POSITIVE = st.floats(
    min_value=0.0, max_value=1e9, exclude_min=True, allow_nan=False, allow_infinity=False
)
PRICE = st.floats(min_value=1e-6, max_value=1e9)
SIGNED = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
RATE = st.floats(min_value=0.0, max_value=1.0)
DAYS_FROM = date(1990, 1, 1)
DAYS = st.dates(min_value=DAYS_FROM, max_value=date(2100, 12, 31))


@st.composite
def weights(draw: st.DrawFn, classes: tuple[str, ...] = CLASSES) -> dict[str, float]:
    """Non-negative weights over some classes, summing to 1 within float rounding."""
    chosen = draw(st.lists(st.sampled_from(classes), min_size=1, unique=True))
    raw = [draw(st.integers(1, 1000)) for _ in chosen]
    return {c: w / sum(raw) for c, w in zip(chosen, raw, strict=True)}


@st.composite
def securities(draw: st.DrawFn) -> dict[str, Security]:
    symbols = draw(st.lists(IDS, min_size=1, max_size=5, unique=True))
    out: dict[str, Security] = {}
    for symbol in symbols:
        wash_group = draw(st.one_of(st.just(symbol), IDS))
        if draw(st.booleans()):
            cls = draw(st.sampled_from(CLASSES))
            out[symbol] = Security(
                symbol=symbol,
                exposures={cls: 1.0},
                asset_class=cls,
                price=draw(PRICE),
                wash_group=wash_group,
                fractional=draw(st.booleans()),
            )
        else:
            out[symbol] = Security(
                symbol=symbol,
                exposures=draw(weights()),
                price=draw(PRICE),
                wash_group=wash_group,
                fractional=draw(st.booleans()),
            )
    return out


NAMES = st.lists(IDS, max_size=3).map(tuple)
BUY_LISTS = st.dictionaries(st.sampled_from(CLASSES), NAMES, max_size=3)


@st.composite
def accounts(draw: st.DrawFn, symbols: list[str], as_of: date) -> tuple[Account, ...]:
    """Accounts whose lots were acquired by `as_of`, lot ids unique across the household."""
    ids = draw(st.lists(IDS, min_size=1, max_size=3, unique=True))
    out: list[Account] = []
    for n, account_id in enumerate(ids):
        lot_ids = draw(st.lists(IDS, max_size=4, unique=True))
        lots = tuple(
            Lot(
                lot_id=f"{n}-{lot_id}",
                symbol=draw(st.sampled_from(symbols)),
                quantity=draw(POSITIVE),
                cost_basis=draw(MONEY),
                acquired=draw(st.dates(min_value=DAYS_FROM, max_value=as_of)),
                locked=draw(st.booleans()),
            )
            for lot_id in lot_ids
        )
        out.append(
            Account(
                account_id=account_id,
                type=draw(st.sampled_from(ACCOUNT_TYPES)),
                cash=draw(MONEY),
                cash_needed=draw(MONEY),
                lots=lots,
                buy_list=draw(BUY_LISTS),
                no_buy_asset_classes=draw(
                    st.lists(st.sampled_from(CLASSES), max_size=2).map(tuple)
                ),
                excluded_symbols=draw(NAMES),
            )
        )
    return tuple(out)


BAND_RULES = st.builds(
    BandRule, absolute=st.none() | RATE, relative=st.none() | RATE, floor=st.none() | RATE
)


@st.composite
def households(draw: st.DrawFn) -> Household:
    secs = draw(securities())
    as_of = draw(DAYS)
    accts = draw(accounts(list(secs), as_of))
    account_ids = [a.account_id for a in accts]
    return Household(
        household_id=draw(IDS),
        as_of=as_of,
        mode=draw(st.sampled_from(MODES)),
        target=draw(weights()),
        bands=Bands(
            absolute=draw(RATE),
            relative=draw(RATE),
            floor=draw(RATE),
            overrides=draw(st.dictionaries(st.sampled_from(CLASSES), BAND_RULES, max_size=2)),
        ),
        tax=TaxRates(short_term_rate=draw(RATE), long_term_rate=draw(RATE)),
        buy_list=draw(BUY_LISTS),
        location=draw(
            st.dictionaries(
                st.sampled_from(CLASSES),
                st.lists(st.sampled_from(ACCOUNT_TYPES), max_size=3, unique=True).map(tuple),
                max_size=3,
            )
        ),
        options=Options(
            min_trade_value=draw(MONEY),
            allow_cross_account_swaps=draw(st.booleans()),
            harvest_losses=draw(st.booleans()),
            harvest_min_loss=draw(MONEY),
            max_realized_gain=draw(st.none() | MONEY),
            transaction_cost_bps=draw(st.floats(0.0, 1000.0)),
            max_realized_gain_year=draw(st.none() | MONEY),
            allow_sells=draw(st.booleans()),
            max_turnover=draw(st.none() | RATE),
            defer_short_term_days=draw(st.integers(0, 400)),
            target_tax_budget_bps=draw(st.floats(0.0, 10_000.0)),
        ),
        realized_this_year=YearRealized(short_term_gain=draw(SIGNED), long_term_gain=draw(SIGNED)),
        accounts=accts,
        securities=secs,
        recent_trades=tuple(
            draw(
                st.lists(
                    st.builds(
                        RecentTrade,
                        account_id=st.sampled_from(account_ids),
                        symbol=IDS,
                        side=st.sampled_from(("buy", "sell")),
                        quantity=POSITIVE,
                        date=DAYS,
                        realized_gain=st.none() | SIGNED,
                    ),
                    max_size=3,
                )
            )
        ),
    )


@settings(max_examples=200, deadline=None)
@given(households())
def test_household_roundtrip(h: Household) -> None:
    encoded = household_to_json(h)
    HOUSEHOLD_SCHEMA.validate(encoded)
    wire = dumps(encoded)
    decoded = parse_household(loads(wire))
    assert decoded == h
    assert dumps(household_to_json(decoded)) == wire


@st.composite
def orders(draw: st.DrawFn) -> Order:
    side = draw(st.sampled_from(("buy", "sell")))
    lots: tuple[LotRelief, ...] = ()
    if side == "sell":
        lots = tuple(
            draw(
                st.lists(
                    st.builds(LotRelief, lot_id=IDS, quantity=POSITIVE), min_size=1, max_size=3
                )
            )
        )
    return Order(
        order_id=draw(IDS),
        account_id=draw(IDS),
        symbol=draw(IDS),
        side=side,
        quantity=draw(POSITIVE),
        est_price=draw(PRICE),
        est_value=draw(MONEY),
        reason=draw(st.sampled_from(REASONS)),
        lots=lots,
    )


DRIFT = st.dictionaries(TEXT, SIGNED, max_size=4)


@st.composite
def results(draw: st.DrawFn) -> RebalanceResult:
    status = draw(st.sampled_from(STATUSES))
    trades = status in ("rebalanced", "band_unreachable")
    invalid = status == "invalid_input"
    result_orders = (
        tuple(draw(st.lists(orders(), min_size=int(status == "rebalanced"), max_size=4)))
        if trades
        else ()
    )
    return RebalanceResult(
        household_id=draw(TEXT if invalid else IDS),
        as_of=draw(st.none() | DAYS) if invalid else draw(DAYS),
        rebalance_id=draw(TEXT if invalid else IDS),
        status=status,
        orders=result_orders,
        drift_before=draw(DRIFT),
        drift_after=draw(DRIFT),
        realized=Realized(
            short_term_gain=draw(SIGNED), long_term_gain=draw(SIGNED), tax_cost=draw(SIGNED)
        ),
        turnover=draw(MONEY),
        messages=tuple(draw(st.lists(TEXT, max_size=3))),
        errors=tuple(
            draw(st.lists(st.builds(Issue, path=TEXT, message=IDS), min_size=1, max_size=4))
        )
        if invalid
        else (),
        solve_ms=draw(MONEY),
    )


@settings(max_examples=200, deadline=None)
@given(results())
def test_rebalance_result_roundtrip(res: RebalanceResult) -> None:
    encoded = result_to_json(res)
    REBALANCE_SCHEMA.validate(encoded)
    wire = dumps(encoded)
    decoded = parse_result(loads(wire))
    assert decoded == res
    assert dumps(result_to_json(decoded)) == wire
    # the worker's own table states read their results back without validation: the same
    stored = stored_result(loads(wire))
    assert stored == decoded
    assert dumps(result_to_json(stored)) == wire


OFFSETS = st.integers(-720, 840).map(lambda m: timezone(timedelta(minutes=m)))


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(UTC) | OFFSETS,
    )
)
def test_timestamp_roundtrip(ts: datetime) -> None:
    """Encoded in UTC with Z, to the microsecond (events use this for every `ts`)."""
    text = format_timestamp(ts)
    r = Reader()
    assert r.timestamp({"ts": text}, "ts", "") == ts
    assert not r.issues
    assert text.endswith("Z")
