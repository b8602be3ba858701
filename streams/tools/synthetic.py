"""Synthetic households and a security universe: seeded, realistic, valid `household/v1` data.

Pure: every function takes a `numpy.random.Generator` and does no I/O, so the same seed gives the
same book. Used by `umh bench solve`, `umh demo`, `umh bench stream`, the backtest and tests.

The stable API:

- `make_universe(n_symbols, rng) -> dict[str, Security]`: priced securities (20-500 USD) in
  `us_equity`, `intl_equity`, `fixed_income`, with substantially identical funds sharing a
  `wash_group` (VTI/ITOT/SCHB are "us-total-market"), municipal bond funds (MUB, VTEB; wash groups
  starting "muni-") for taxable accounts, look-through balanced funds (AOR, AOM, AOA, with
  `exposures`) and a few single stocks. There are no cash-like securities: cash is account cash.
  Beyond the named catalogue, symbols are synthetic (`U0042`, `I0043`, `F0044`) in groups of 3.
- `make_household(household_id, universe, rng, *, n_accounts=4, n_lots=200, mode="rebalance",
  as_of=date(2026, 11, 24), drifted=True) -> Household`: 1-n accounts mixing taxable, tax-deferred
  and tax-exempt; lots bought over the past 12 years at varied cost (embedded gains and losses);
  a target drawn from `TARGETS`; household buy lists of 2-3 symbols per class in different wash
  groups; munis on some taxable accounts' buy lists; screens; options; recent trades. With
  `drifted` at least one class is out of its band (by 1.3-2x its tolerance); without it every
  class is within its band (checked with `solver.drift`; guaranteed from about 10 lots up, with
  fewer lots whole-share rounding may not allow it and the last of 20 draws is returned). The
  result always passes `parse_household(household_to_json(h))` and carries the `securities` it
  holds, may buy or recently traded. Values: ~1.2M USD median (lognormal), at least 3,000 USD a
  lot; about 5% have a pending withdrawal (`cash_needed`), half harvest losses.
- `make_book(n_households, universe, rng, *, drifted_share=0.3, n_accounts=4, n_lots=200,
  as_of=date(2026, 11, 24), mode=None, drifted=None) -> list[Household]`: ids `hh-00001`...;
  modes ~80% rebalance, 10% guardrail, 10% monitor and each household drifted with probability
  `drifted_share`, unless `mode` / `drifted` fix them for the whole book.
- `universe_prices(universe) -> dict[str, float]`: the symbols' prices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np

from schemas import (
    CASH,
    Account,
    BandRule,
    Bands,
    Household,
    Lot,
    Options,
    RecentTrade,
    Security,
    TaxRates,
)
from solver.drift import household_drift

__all__ = [
    "ASSET_CLASSES",
    "BALANCED",
    "CATALOGUE",
    "MIN_SYMBOLS",
    "MODE_MIX",
    "TARGETS",
    "make_book",
    "make_household",
    "make_universe",
    "universe_prices",
]

US, INTL, FI = "us_equity", "intl_equity", "fixed_income"
ASSET_CLASSES = (US, INTL, FI, CASH)
#: Mode shares of `make_book`.
MODE_MIX = {"rebalance": 0.8, "guardrail": 0.1, "monitor": 0.1}

#: Target allocations (us_equity, intl_equity, fixed_income, cash), drawn uniformly.
TARGETS: tuple[tuple[float, float, float, float], ...] = (
    (0.45, 0.15, 0.37, 0.03),
    (0.60, 0.20, 0.17, 0.03),
    (0.30, 0.10, 0.57, 0.03),
    (0.50, 0.20, 0.28, 0.02),
    (0.35, 0.15, 0.45, 0.05),
    (0.70, 0.25, 0.04, 0.01),
    (0.40, 0.20, 0.38, 0.02),
)

#: Look-through exposures of the balanced funds (iShares core allocation ETFs, rounded).
BALANCED: dict[str, dict[str, float]] = {
    "AOR": {US: 0.36, INTL: 0.24, FI: 0.40},
    "AOM": {US: 0.24, INTL: 0.16, FI: 0.60},
    "AOA": {US: 0.48, INTL: 0.32, FI: 0.20},
}


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    symbol: str
    asset_class: str  # "balanced" for look-through funds (see BALANCED)
    wash_group: str
    base_price: float


def _entries(rows: str) -> tuple[CatalogueEntry, ...]:
    out = []
    for line in rows.strip().splitlines():
        symbol, cls, group, price = line.split()
        out.append(CatalogueEntry(symbol, cls, group, float(price)))
    return tuple(out)


#: In priority order: the first `MIN_SYMBOLS` already give every class two wash groups (and a
#: muni), so that small universes still allow buy lists and harvest replacements.
CATALOGUE = _entries("""
VTI   us_equity    us-total-market        285
VXUS  intl_equity  intl-total-market       64
BND   fixed_income us-aggregate-bond       73
VOO   us_equity    us-sp500               480
VEA   intl_equity  intl-developed          51
IEF   fixed_income treasury-intermediate   95
MUB   fixed_income muni-national          107
ITOT  us_equity    us-total-market        125
IXUS  intl_equity  intl-total-market       70
AGG   fixed_income us-aggregate-bond       99
AOR   balanced     AOR                     58
IVV   us_equity    us-sp500               485
IEFA  intl_equity  intl-developed          75
VGIT  fixed_income treasury-intermediate   59
VTEB  fixed_income muni-national           50
SCHB  us_equity    us-total-market         23
VWO   intl_equity  emerging-markets        44
SCHZ  fixed_income us-aggregate-bond       23
AOM   balanced     AOM                     44
VB    us_equity    us-small-cap           240
IEMG  intl_equity  emerging-markets        56
SHY   fixed_income treasury-short          82
IJR   us_equity    us-small-cap           115
SCHF  intl_equity  intl-developed          21
VGSH  fixed_income treasury-short          58
AAPL  us_equity    AAPL                   230
MSFT  us_equity    MSFT                   420
XOM   us_equity    XOM                    115
VTV   us_equity    us-large-value         170
IWD   us_equity    us-large-value         190
VUG   us_equity    us-large-growth        390
IWF   us_equity    us-large-growth        380
LQD   fixed_income us-corporate-ig        108
VCIT  fixed_income us-corporate-ig         81
TIP   fixed_income us-tips                109
SCHP  fixed_income us-tips                 26
SCHE  intl_equity  emerging-markets        27
SPLG  us_equity    us-sp500                66
VO    us_equity    us-mid-cap             260
IJH   us_equity    us-mid-cap              62
AOA   balanced     AOA                     78
JNJ   us_equity    JNJ                    155
VYMI  intl_equity  intl-dividend           70
IDV   intl_equity  intl-dividend           32
TFI   fixed_income muni-national-2         46
""")
MIN_SYMBOLS = 7
SINGLE_STOCKS = frozenset({"AAPL", "MSFT", "XOM", "JNJ"})
_SYNTHETIC_CLASSES = ((US, "U"), (INTL, "I"), (FI, "F"))

# Annual drift and volatility per class, for the cost basis of old lots (geometric walk back).
_GROWTH = {US: (0.08, 0.17), INTL: (0.05, 0.18), FI: (0.02, 0.06), "balanced": (0.05, 0.10)}
_LOCATION: dict[str, tuple[str, ...]] = {
    FI: ("tax_deferred", "tax_exempt", "taxable"),
    US: ("taxable", "tax_exempt", "tax_deferred"),
    INTL: ("taxable", "tax_deferred", "tax_exempt"),
}
_ACCOUNT_ORDER = ("taxable", "tax_deferred", "tax_exempt")
_SUFFIX = {"taxable": "TAX", "tax_deferred": "IRA", "tax_exempt": "ROTH"}
_TAX_RATES = ((0.408, 0.238), (0.35, 0.188), (0.24, 0.15), (0.32, 0.188))


def make_universe(n_symbols: int, rng: np.random.Generator) -> dict[str, Security]:
    """`n_symbols` priced securities: the catalogue in priority order, then synthetic ones.

    Prices are the catalogue's base prices times a lognormal factor (sigma 0.15), clipped to
    20-500 USD; synthetic symbols draw log-uniformly in 20-500. Single stocks and about 40% of the
    funds are whole-share only (`fractional` False).
    """
    if n_symbols < MIN_SYMBOLS:
        raise ValueError(f"n_symbols must be >= {MIN_SYMBOLS} (got {n_symbols})")
    entries = list(CATALOGUE[:n_symbols])
    for i in range(len(entries), n_symbols):
        cls, letter = _SYNTHETIC_CLASSES[i % 3]
        group = f"syn-{cls.split('_')[0]}-{i // 9:03d}"  # 3 symbols of a class per group
        price = float(math.exp(rng.uniform(math.log(20.0), math.log(500.0))))
        entries.append(CatalogueEntry(f"{letter}{i:04d}", cls, group, price))
    universe: dict[str, Security] = {}
    for e in entries:
        price = float(np.clip(e.base_price * math.exp(rng.normal(0.0, 0.15)), 20.0, 500.0))
        fractional = e.symbol not in SINGLE_STOCKS and bool(rng.random() < 0.6)
        if e.asset_class == "balanced":
            sec = Security(
                symbol=e.symbol,
                exposures=dict(BALANCED[e.symbol]),
                price=round(price, 2),
                wash_group=e.wash_group,
                fractional=fractional,
            )
        else:
            sec = Security(
                symbol=e.symbol,
                exposures={e.asset_class: 1.0},
                price=round(price, 2),
                wash_group=e.wash_group,
                fractional=fractional,
                asset_class=e.asset_class,
            )
        universe[e.symbol] = sec
    return universe


def universe_prices(universe: dict[str, Security]) -> dict[str, float]:
    """Symbol -> price of every priced security of the universe."""
    return {s: float(sec.price) for s, sec in universe.items() if sec.price is not None}


def is_muni(sec: Security) -> bool:
    return sec.group.startswith("muni-")


def _by_group(universe: dict[str, Security], cls: str) -> dict[str, list[str]]:
    """Wash group -> symbols for the pure securities of `cls` (funds only: no single stocks)."""
    groups: dict[str, list[str]] = {}
    for s, sec in universe.items():
        if sec.asset_class == cls and s not in SINGLE_STOCKS:
            groups.setdefault(sec.group, []).append(s)
    return groups


def _pick(rng: np.random.Generator, items: list[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _buy_lists(universe: dict[str, Security], rng: np.random.Generator) -> dict[str, list[str]]:
    """2-3 symbols per class, each from a different wash group (harvest replacements exist)."""
    out: dict[str, list[str]] = {}
    for cls in (US, INTL, FI):
        groups = {g: ss for g, ss in _by_group(universe, cls).items() if not g.startswith("muni-")}
        if not groups:
            groups = _by_group(universe, cls)
        names = sorted(groups)
        k = min(len(names), int(rng.integers(2, 4)))
        chosen = rng.permutation(len(names))[:k]
        out[cls] = [_pick(rng, groups[names[i]]) for i in chosen]
    return out


def _account_types(n_accounts: int, rng: np.random.Generator) -> list[str]:
    types = list(_ACCOUNT_ORDER[:n_accounts])
    while len(types) < n_accounts:
        types.append(_ACCOUNT_ORDER[int(rng.choice(3, p=[0.4, 0.35, 0.25]))])
    return types


def _account_ids(household_id: str, types: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    ids = []
    for t in types:
        seen[t] = seen.get(t, 0) + 1
        n = seen[t]
        ids.append(f"{household_id}-{_SUFFIX[t]}" + (str(n) if n > 1 else ""))
    return ids


def _weights(
    target: dict[str, float], bands: Bands, rng: np.random.Generator, drifted: bool
) -> dict[str, float]:
    """Class weights to build: within half of every band, or one class pushed 1.3-2x out."""
    tol = {c: bands.tolerance(c, t) for c, t in target.items()}
    w = dict(target)
    # in band: move mass between two classes by at most 0.4 of the smaller tolerance
    a, b = (str(c) for c in rng.permutation([c for c in target if c != CASH])[:2])
    d = float(rng.uniform(-0.4, 0.4)) * min(tol[a], tol[b])
    d = max(min(d, w[b]), -w[a])
    w[a] += d
    w[b] -= d
    if drifted:
        candidates = [c for c in target if c != CASH and target[c] >= 0.1]
        a = _pick(rng, candidates)
        b = max((c for c in target if c not in (a, CASH)), key=lambda c: w[c])
        d = float(rng.uniform(1.3, 2.0)) * tol[a]
        if w[b] >= d and rng.random() < 0.5:
            w[a], w[b] = w[a] + d, w[b] - d  # a overweight
        else:
            d = min(d, w[a])
            w[a], w[b] = w[a] - d, w[b] + d  # a underweight
    return w


def make_household(
    household_id: str,
    universe: dict[str, Security],
    rng: np.random.Generator,
    *,
    n_accounts: int = 4,
    n_lots: int = 200,
    mode: str = "rebalance",
    as_of: date = date(2026, 11, 24),
    drifted: bool = True,
) -> Household:
    """One valid household (see the module docstring); deterministic for a given `rng` state."""
    if n_accounts < 1:
        raise ValueError("n_accounts must be >= 1")
    if n_lots < 1:
        raise ValueError("n_lots must be >= 1")
    for _attempt in range(20):
        h = _draw_household(
            household_id,
            universe,
            rng,
            n_accounts=n_accounts,
            n_lots=n_lots,
            mode=mode,
            as_of=as_of,
            drifted=drifted,
        )
        report = household_drift(h)
        breached = bool(report.breached.any())
        if breached == drifted:
            return h
    return h  # pragma: no cover - rounding never defeats 20 draws in practice


def _draw_household(
    household_id: str,
    universe: dict[str, Security],
    rng: np.random.Generator,
    *,
    n_accounts: int,
    n_lots: int,
    mode: str,
    as_of: date,
    drifted: bool,
) -> Household:
    us, intl, fi, cash = TARGETS[int(rng.integers(len(TARGETS)))]
    target = {US: us, INTL: intl, FI: fi, CASH: cash}
    bands = Bands(overrides={CASH: BandRule(absolute=0.02)}) if rng.random() < 0.3 else Bands()
    weights = _weights(target, bands, rng, drifted)

    types = _account_types(n_accounts, rng)
    ids = _account_ids(household_id, types)
    n_acc = len(types)
    share = rng.dirichlet(np.full(n_acc, 2.0))
    # investable value: lognormal around 1.2M, large enough for lots of a few thousand dollars
    value_usd = max(float(rng.lognormal(math.log(1.2e6), 0.7)), n_lots * 3000.0, 50_000.0)

    buy_list = _buy_lists(universe, rng)
    munis = [s for s, sec in universe.items() if is_muni(sec)]
    stocks = [s for s in universe if s in SINGLE_STOCKS]
    balanced = [s for s, sec in universe.items() if sec.asset_class is None]

    # per-account rules: munis in some taxable accounts, rare hard no-bond rule, screens
    acc_buy: list[dict[str, tuple[str, ...]]] = [{} for _ in types]
    no_buy: list[tuple[str, ...]] = [() for _ in types]
    excluded: list[tuple[str, ...]] = [() for _ in types]
    for i, t in enumerate(types):
        if t == "taxable" and munis and rng.random() < 0.6:
            acc_buy[i] = {FI: (_pick(rng, munis),)}
        elif t == "taxable" and rng.random() < 0.1 and n_acc > 1:
            no_buy[i] = (FI,)
        if rng.random() < 0.2:
            screens = [s for s in stocks if s not in buy_list[US]] or ["XOM"]
            excluded[i] = (_pick(rng, screens),)

    # symbols held per class: the buy list plus legacy positions (other funds, single stocks)
    held: dict[str, list[str]] = {}
    for cls in (US, INTL, FI):
        pool = [s for s, sec in universe.items() if sec.asset_class == cls]
        legacy = [s for s in pool if s not in buy_list[cls]]
        k = min(len(legacy), int(rng.integers(0, 4)))
        held[cls] = list(buy_list[cls]) + [legacy[i] for i in rng.permutation(len(legacy))[:k]]

    # balanced funds take part of the value; their look-through is taken off the class budgets
    budget = {c: weights[c] * value_usd for c in (US, INTL, FI)}
    lot_specs: list[tuple[str, str, float]] = []  # (class key, symbol, value)
    if balanced and rng.random() < 0.3:
        fund = _pick(rng, balanced)
        exp = universe[fund].exposures
        room = min(0.5 * budget[c] / (exp[c] * value_usd) for c in exp if exp[c] > 0)
        fund_share = min(float(rng.uniform(0.03, 0.12)), room)
        fund_value = fund_share * value_usd
        for c, x in exp.items():
            budget[c] -= x * fund_value
        n_fund = max(1, n_lots // 20)
        lot_specs += [("balanced", fund, fund_value / n_fund)] * n_fund

    n_left = max(n_lots - len(lot_specs), 0)
    invested = sum(budget.values())
    counts = {c: int(budget[c] / invested * n_left) if invested > 0 else 0 for c in budget}
    for c in sorted(budget, key=lambda c: -budget[c]):  # hand out the remainder, biggest first
        if sum(counts.values()) >= n_left:
            break
        counts[c] += 1
    for c in (US, INTL, FI):
        if counts[c] == 0 or budget[c] <= 0:
            continue
        split = rng.dirichlet(np.full(counts[c], 3.0)) * budget[c]
        syms = held[c]
        picks = rng.choice(len(syms), size=counts[c], p=rng.dirichlet(np.full(len(syms), 1.5)))
        lot_specs += [(c, syms[k], float(v)) for k, v in zip(picks, split, strict=True)]
    lots_by_acc = _place_lots(lot_specs, universe, types, ids, share, no_buy, as_of, rng)

    # cash: the household's cash weight, spread over the accounts; sometimes a pending withdrawal
    holdings_usd = sum(
        lot.quantity * float(universe[lot.symbol].price or 0.0)
        for lots in lots_by_acc
        for lot in lots
    )
    cash_total = weights[CASH] / max(1e-9, 1.0 - weights[CASH]) * holdings_usd
    cash_split = rng.dirichlet(np.full(n_acc, 1.0)) * cash_total
    cash_needed = [0.0] * n_acc
    if rng.random() < 0.05:
        j = int(rng.integers(n_acc))
        cash_needed[j] = round(float(rng.uniform(0.2, 0.8)) * float(cash_split[j]), 2)

    accounts = tuple(
        Account(
            account_id=ids[i],
            type=types[i],
            cash=round(float(cash_split[i]), 2),
            cash_needed=cash_needed[i],
            lots=tuple(lots_by_acc[i]),
            buy_list=acc_buy[i],
            no_buy_asset_classes=no_buy[i],
            excluded_symbols=excluded[i],
        )
        for i in range(n_acc)
    )

    recent = _recent_trades(accounts, universe, rng, as_of)
    harvest = bool(rng.random() < 0.5)
    options = Options(
        min_trade_value=250.0,
        allow_cross_account_swaps=bool(rng.random() < 0.1),
        harvest_losses=harvest,
        harvest_min_loss=float(rng.choice([500.0, 1000.0, 2500.0])),
        max_realized_gain=float(rng.choice([10_000.0, 25_000.0])) if rng.random() < 0.1 else None,
        transaction_cost_bps=2.0,
    )
    st, lt = _TAX_RATES[int(rng.integers(len(_TAX_RATES)))]
    referenced = {lot.symbol for a in accounts for lot in a.lots}
    referenced |= {s for ss in buy_list.values() for s in ss}
    referenced |= {s for a in accounts for ss in a.buy_list.values() for s in ss}
    referenced |= {t.symbol for t in recent}
    return Household(
        household_id=household_id,
        as_of=as_of,
        target=target,
        accounts=accounts,
        securities={s: universe[s] for s in sorted(referenced)},
        mode=mode,
        bands=bands,
        tax=TaxRates(short_term_rate=st, long_term_rate=lt),
        buy_list={c: tuple(ss) for c, ss in buy_list.items()},
        location=dict(_LOCATION),
        options=options,
        recent_trades=recent,
    )


def _place_lots(
    lot_specs: list[tuple[str, str, float]],
    universe: dict[str, Security],
    types: list[str],
    ids: list[str],
    share: np.ndarray,
    no_buy: list[tuple[str, ...]],
    as_of: date,
    rng: np.random.Generator,
) -> list[list[Lot]]:
    """Quantities, accounts, dates and bases of the lots (vectorised draws: ~1 ms a household).

    Munis only sit in taxable accounts and bonds never where a no-bond rule is; whole-share
    symbols round with the remainder carried to the symbol's next lot, so class values stay close
    to their budgets.
    """
    n = len(lot_specs)
    n_acc = len(types)
    account = np.zeros(n, dtype=np.int64)
    by_symbol: dict[str, list[int]] = {}
    for k, (_cls, symbol, _v) in enumerate(lot_specs):
        by_symbol.setdefault(symbol, []).append(k)
    for symbol, idx in by_symbol.items():
        sec = universe[symbol]
        bond = sec.asset_class == FI
        ok = np.array(
            [
                not (is_muni(sec) and t != "taxable") and not (bond and FI in no_buy[i])
                for i, t in enumerate(types)
            ]
        )
        p = np.where(ok, share, 0.0) if ok.any() else share
        account[idx] = rng.choice(n_acc, size=len(idx), p=p / p.sum())
    short = rng.random(n) < 0.3
    years = np.where(short, rng.uniform(0.05, 1.0, n), rng.uniform(1.0, 12.0, n))
    shock = rng.normal(size=n)
    lots_by_acc: list[list[Lot]] = [[] for _ in types]
    carry: dict[str, float] = {}
    for k, (cls, symbol, v) in enumerate(lot_specs):
        sec = universe[symbol]
        price = float(sec.price or 1.0)
        q = v / price + carry.get(symbol, 0.0)
        qty = float(round(q)) if not sec.fractional else round(q, 3)
        carry[symbol] = q - qty
        if qty <= 0:
            continue
        mu, sigma = _GROWTH[cls]
        y = float(years[k])
        growth = math.exp((mu - 0.5 * sigma * sigma) * y + sigma * math.sqrt(y) * float(shock[k]))
        i = int(account[k])
        lots_by_acc[i].append(
            Lot(
                lot_id="",
                symbol=symbol,
                quantity=qty,
                cost_basis=round(qty * price / growth, 2),
                acquired=as_of - timedelta(days=max(3, int(y * 365.25))),
            )
        )
    # ids in order of acquisition within each account
    return [
        [
            replace(lot, lot_id=f"{ids[i]}-L{j + 1:04d}")
            for j, lot in enumerate(sorted(lots, key=lambda x: (x.acquired, x.symbol)))
        ]
        for i, lots in enumerate(lots_by_acc)
    ]


def _recent_trades(
    accounts: tuple[Account, ...],
    universe: dict[str, Security],
    rng: np.random.Generator,
    as_of: date,
) -> tuple[RecentTrade, ...]:
    """0-3 trades in the last 30 days: loss sales in taxable accounts and buys anywhere."""
    out: list[RecentTrade] = []
    for _ in range(int(rng.choice(4, p=[0.5, 0.25, 0.15, 0.1]))):
        account = accounts[int(rng.integers(len(accounts)))]
        if not account.lots:
            continue
        lot = account.lots[int(rng.integers(len(account.lots)))]
        price = float(universe[lot.symbol].price or 1.0)
        qty = float(max(1, round(lot.quantity * float(rng.uniform(0.1, 0.5)))))
        day = as_of - timedelta(days=int(rng.integers(1, 30)))
        if account.type == "taxable" and rng.random() < 0.6:
            loss = -round(qty * price * float(rng.uniform(0.03, 0.2)), 2)
            out.append(RecentTrade(account.account_id, lot.symbol, "sell", qty, day, loss))
        else:
            out.append(RecentTrade(account.account_id, lot.symbol, "buy", qty, day))
    return tuple(out)


def make_book(
    n_households: int,
    universe: dict[str, Security],
    rng: np.random.Generator,
    *,
    drifted_share: float = 0.3,
    n_accounts: int = 4,
    n_lots: int = 200,
    as_of: date = date(2026, 11, 24),
    mode: str | None = None,
    drifted: bool | None = None,
) -> list[Household]:
    """`n_households` households `hh-00001`..., modes by `MODE_MIX`, ~`drifted_share` drifted.

    `n_accounts`, `n_lots` and `as_of` go to `make_household`; a `mode` or `drifted` given here
    applies to every household instead of the random draw.
    """
    modes = list(MODE_MIX)
    probs = list(MODE_MIX.values())
    width = max(5, len(str(n_households)))
    book = []
    for n in range(1, n_households + 1):
        m = mode if mode is not None else modes[int(rng.choice(len(modes), p=probs))]
        d = drifted if drifted is not None else bool(rng.random() < drifted_share)
        book.append(
            make_household(
                f"hh-{n:0{width}d}",
                universe,
                rng,
                n_accounts=n_accounts,
                n_lots=n_lots,
                mode=m,
                as_of=as_of,
                drifted=d,
            )
        )
    return book
