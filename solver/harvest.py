"""The after-tax value of harvesting a loss: one model, used to pick harvest candidates.

US rules as the contract reads them (section 1, `tax`): a calendar year nets its short-term
gains and losses, and its long-term ones; a net loss of one kind offsets a net gain of the
other; a net loss left over offsets up to 3,000 USD of ordinary income (taken from the
short-term loss first) and the rest is carried forward with its character. Ordinary income is
taxed at `short_term_rate` (the contract's short-term rate is the ordinary rate).

`year_tax` is that netting; `harvest_value` prices one harvest with it; `harvest_candidates`
chooses, lot by lot, the losses worth harvesting in one household. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from schemas import Household, Order, TaxRates

from .lots import long_term_after
from .tolerances import USD_EPS

#: A year's net capital loss may offset this much ordinary income (US rule, single or joint).
ORDINARY_OFFSET_USD = 3000.0


@dataclass(frozen=True, slots=True)
class YearTax:
    """One calendar year's capital-gains tax after netting (section "US rules" above)."""

    short_term_usd: float  # net short-term gain taxed (>= 0)
    long_term_usd: float  # net long-term gain taxed (>= 0)
    ordinary_offset_usd: float  # net loss set against ordinary income (0..limit)
    tax_usd: float  # negative when the ordinary-income offset saves more than the gains cost
    carry_short_usd: float  # short-term loss carried into the next year (<= 0)
    carry_long_usd: float  # long-term loss carried into the next year (<= 0)

    @property
    def carried_usd(self) -> float:
        """The whole loss carried forward, as a positive number."""
        return -(self.carry_short_usd + self.carry_long_usd)


def year_tax(
    short_gain_usd: float,
    long_gain_usd: float,
    rates: TaxRates,
    *,
    carry_short_usd: float = 0.0,
    carry_long_usd: float = 0.0,
    ordinary_offset_limit_usd: float = ORDINARY_OFFSET_USD,
) -> YearTax:
    """The tax of a year's realized gains (each kind net of its carried loss, <= 0)."""
    st = short_gain_usd + carry_short_usd
    lt = long_gain_usd + carry_long_usd
    if st < 0 < lt:
        lt, st = lt + st, 0.0
        if lt < 0:
            st, lt = lt, 0.0
    elif lt < 0 < st:
        st, lt = st + lt, 0.0
        if st < 0:
            lt, st = st, 0.0
    taxed_st, taxed_lt = max(st, 0.0), max(lt, 0.0)
    carry_st, carry_lt = min(st, 0.0), min(lt, 0.0)
    # The ordinary-income offset takes the short-term loss first (Schedule D's order).
    offset = min(ordinary_offset_limit_usd, -(carry_st + carry_lt))
    from_st = min(offset, -carry_st)
    carry_st += from_st
    carry_lt += offset - from_st
    tax = (
        taxed_st * rates.short_term_rate
        + taxed_lt * rates.long_term_rate
        - offset * rates.short_term_rate
    )
    return YearTax(taxed_st, taxed_lt, offset, tax, carry_st, carry_lt)


@dataclass(frozen=True, slots=True)
class HarvestRule:
    """How harvest candidates are chosen, and what their value assumes about the future.

    - `by_value`: harvest a loss only when its value (`harvest_value`) is positive; false is the
      rule before values (every loss of at least `harvest_min_loss`), kept for comparison.
    - `horizon_years`: years until the replacement lot is sold (or the household liquidates);
      the lower basis it carries adds `loss * long_term_rate` of tax then, discounted.
    - `offset_years`: future years whose ordinary-income offset (3,000 USD a year at
      `short_term_rate`) a loss carried forward is assumed to fund: 1, next year's. The rest of
      the carried loss is assumed used only when the replacement's gain is realized, at the
      horizon, against that gain: worth `long_term_rate` discounted `horizon_years`, exactly the
      tax its replacement adds then, so that part of a harvest pays nothing (less its costs).
      Why: the solver does not know the household's carry-forward (the contract has no field
      for it) and a umh household realizes few gains (it relieves losses and high-basis lots
      first), so a loss carried beyond next year mostly waits for the liquidation that also
      taxes its replacement's lower basis; and a harvest made every year would otherwise count
      the same future offsets again and again. 0: only this year's offset and gains count.
    - `discount_rate`: annual rate at which a tax dollar later is worth less than one now (what
      the tax saved earns while invested); factor `(1 + discount_rate) ** -years`.
    - `round_trips`: trades the harvest costs at `transaction_cost_bps` of the lot's value: the
      sale and the replacement's purchase (2).
    """

    by_value: bool = True
    horizon_years: float = 10.0
    offset_years: int = 1
    discount_rate: float = 0.05
    round_trips: float = 2.0

    def discount(self, years: float) -> float:
        return float((1.0 + self.discount_rate) ** -max(years, 0.0))

    def offset_value(self, carried_usd: float, rates: TaxRates) -> float:
        """What a carry-forward of `carried_usd` (>= 0) saves against the ordinary income of the
        next `offset_years` years: `ORDINARY_OFFSET_USD` a year at `short_term_rate`,
        discounted year by year."""
        out, left = 0.0, max(carried_usd, 0.0)
        for k in range(1, self.offset_years + 1):
            if left <= 0 or k > self.horizon_years:
                break
            used = min(left, ORDINARY_OFFSET_USD)
            out += used * rates.short_term_rate * self.discount(k)
            left -= used
        return out

    def offset_capacity_usd(self) -> float:
        """How much of a carry-forward the ordinary-income offsets of `offset_years` can use."""
        return ORDINARY_OFFSET_USD * max(min(self.offset_years, int(self.horizon_years)), 0)


HARVEST_BY_VALUE = HarvestRule()
HARVEST_ALWAYS = HarvestRule(by_value=False)


@dataclass(frozen=True, slots=True)
class HarvestValue:
    """What harvesting one loss is worth, in USD (see `harvest_value`)."""

    loss_usd: float
    saved_now_usd: float  # this year's tax saved (gains offset, ordinary-income offset)
    carried_usd: float  # the part of the loss this year cannot use
    carry_value_usd: float  # the carried part: next year's income offset, the rest at the horizon
    later_tax_usd: float  # the replacement's lower basis: tax later, discounted
    cost_usd: float  # trading costs of the sale and the replacement

    @property
    def value_usd(self) -> float:
        return self.saved_now_usd + self.carry_value_usd - self.later_tax_usd - self.cost_usd


def harvest_value(
    loss_usd: float,
    lot_value_usd: float,
    *,
    short_term: bool,
    rates: TaxRates,
    realized_short_usd: float = 0.0,
    realized_long_usd: float = 0.0,
    cost_bps: float = 0.0,
    rule: HarvestRule = HARVEST_BY_VALUE,
) -> HarvestValue:
    """Expected after-tax value of selling a taxable lot at `loss_usd` (> 0) and buying a
    replacement of the same class (another wash group) in the same account.

    Assumptions (the model; its numbers are `rule`'s):
    1. The tax saved now is this year's tax without the loss less the tax with it, the year's
       net realized gains so far being `realized_short_usd` and `realized_long_usd`
       (`realized_this_year` and, where known, the gains of the same rebalance). So the loss
       offsets gains of its own kind first, then of the other kind (short-term at
       `short_term_rate`, long-term at `long_term_rate`), then up to 3,000 USD of ordinary
       income at `short_term_rate` (only what the year's net loss has not used yet).
    2. Losses carried forward from earlier years are not known to the solver and count as zero.
       The part of this loss the year cannot use is carried forward; it first offsets the
       ordinary income of the next `offset_years` (3,000 USD a year at `short_term_rate`,
       discounted year by year, less what the year's net loss before this one already carries
       there), and the rest is used against the replacement's own gain at the horizon
       (`long_term_rate`, discounted `horizon_years`: it cancels what assumption 3 adds for it).
       The household is assumed to realize no other net gains in those years.
    3. The replacement's basis is lower by the loss; its gain, `loss_usd` more, is realized
       `horizon_years` later as a long-term gain: `long_term_rate`, discounted. (A household
       that holds for life, with a step-up in basis, never pays it: the model is conservative.)
    4. Trading costs: `round_trips` trades of the lot's value at `cost_bps`.
    The function does not apply `harvest_min_loss`; `harvest_candidates` does.
    """
    if loss_usd <= 0:
        raise ValueError(f"loss_usd must be positive, got {loss_usd}")
    before = year_tax(realized_short_usd, realized_long_usd, rates)
    after = year_tax(
        realized_short_usd - (loss_usd if short_term else 0.0),
        realized_long_usd - (0.0 if short_term else loss_usd),
        rates,
    )
    carried = max(after.carried_usd - before.carried_usd, 0.0)
    a = rule
    # The carried part: first the ordinary-income offsets of the next `offset_years` (what the
    # year's net loss before this one has not already reserved), the rest at the horizon.
    funded = a.offset_value(after.carried_usd, rates) - a.offset_value(before.carried_usd, rates)
    cap = a.offset_capacity_usd()
    funded_usd = min(after.carried_usd, cap) - min(before.carried_usd, cap)
    rest = max(carried - funded_usd, 0.0)
    at_horizon = rates.long_term_rate * a.discount(a.horizon_years)
    return HarvestValue(
        loss_usd=loss_usd,
        saved_now_usd=before.tax_usd - after.tax_usd,
        carried_usd=carried,
        carry_value_usd=max(funded, 0.0) + rest * at_horizon,
        later_tax_usd=loss_usd * at_horizon,
        cost_usd=a.round_trips * cost_bps / 1e4 * lot_value_usd,
    )


@dataclass(frozen=True, slots=True)
class LossLot:
    """A taxable lot at a loss that the wash-sale rule allows to be sold now."""

    account_id: str
    lot_id: str
    symbol: str
    loss_usd: float
    value_usd: float
    short_term: bool


def harvest_candidates(
    h: Household,
    lots: Iterable[LossLot],
    *,
    realized_short_usd: float = 0.0,
    realized_long_usd: float = 0.0,
    rule: HarvestRule = HARVEST_BY_VALUE,
) -> dict[tuple[str, str], HarvestValue]:
    """(account_id, lot_id) -> value of each loss worth harvesting in this household.

    Only losses of at least `harvest_min_loss`. With `rule.by_value` (the default), a loss is
    taken only when its value is positive, lot after lot (short-term first, then the largest
    loss), each priced after the losses taken before it: the 3,000 USD offset and the year's
    gains are used once. Without it, every such loss is taken (the rule before values).
    """
    if not h.options.harvest_losses:
        return {}
    floor = max(h.options.harvest_min_loss, USD_EPS)
    eligible = sorted(
        (x for x in lots if x.loss_usd >= floor),
        key=lambda x: (not x.short_term, -x.loss_usd, x.account_id, x.lot_id),
    )
    st, lt = realized_short_usd, realized_long_usd
    out: dict[tuple[str, str], HarvestValue] = {}
    for x in eligible:
        v = harvest_value(
            x.loss_usd,
            x.value_usd,
            short_term=x.short_term,
            rates=h.tax,
            realized_short_usd=st,
            realized_long_usd=lt,
            cost_bps=h.options.transaction_cost_bps,
            rule=rule,
        )
        if rule.by_value and v.value_usd <= USD_EPS:
            continue
        out[(x.account_id, x.lot_id)] = v
        if x.short_term:
            st -= x.loss_usd
        else:
            lt -= x.loss_usd
    return out


def harvest_message(lot_id: str, symbol: str, v: HarvestValue) -> str:
    """The line `messages` carries for a harvest: what the loss is worth after tax."""
    return (
        f"harvest {lot_id} {symbol}: loss {v.loss_usd:,.0f}, worth ~{v.value_usd:,.0f} after tax "
        f"(saves {v.saved_now_usd:,.0f} now + {v.carry_value_usd:,.0f} carried, less "
        f"{v.later_tax_usd:,.0f} later on the lower basis and {v.cost_usd:,.0f} costs)"
    )


def loss_lots(
    h: Household, blocked: frozenset[tuple[str, str]] = frozenset()
) -> tuple[LossLot, ...]:
    """Taxable lots at a loss on `as_of`, but for the (account_id, lot_id) in `blocked` (rule
    4b: `solver.wash.blocked_loss_lots`). Lots without a price and locked lots are left out."""
    out: list[LossLot] = []
    for a in h.accounts:
        if a.type != "taxable":
            continue
        for lot in a.lots:
            sec = h.securities.get(lot.symbol)
            if (
                sec is None
                or sec.price is None
                or lot.locked
                or (a.account_id, lot.lot_id) in blocked
            ):
                continue
            value = lot.quantity * sec.price
            loss = lot.cost_basis - value
            if loss > USD_EPS:
                out.append(
                    LossLot(
                        a.account_id,
                        lot.lot_id,
                        lot.symbol,
                        loss,
                        value,
                        h.as_of <= long_term_after(lot.acquired),
                    )
                )
    return tuple(out)


def household_candidates(
    h: Household,
    blocked: frozenset[tuple[str, str]] = frozenset(),
    rule: HarvestRule = HARVEST_BY_VALUE,
) -> dict[tuple[str, str], HarvestValue]:
    """The household's losses worth harvesting now (but the `blocked` lots, rule 4b), priced
    against `realized_this_year`."""
    return harvest_candidates(
        h,
        loss_lots(h, blocked),
        realized_short_usd=h.realized_this_year.short_term_gain,
        realized_long_usd=h.realized_this_year.long_term_gain,
        rule=rule,
    )


def harvest_messages(
    h: Household, orders: Iterable[Order], rule: HarvestRule = HARVEST_BY_VALUE
) -> tuple[str, ...]:
    """One line per lot a `tax_loss_harvest` sell relieves, its value priced with what the
    rebalance's other sells realize (on top of `realized_this_year`), harvests in the order
    `harvest_candidates` takes them."""
    orders = tuple(orders)
    if not any(o.reason == "tax_loss_harvest" for o in orders):
        return ()
    lots = {(a.account_id, lot.lot_id): (a, lot) for a in h.accounts for lot in a.lots}
    st = h.realized_this_year.short_term_gain
    lt = h.realized_this_year.long_term_gain
    harvested: list[LossLot] = []
    for o in orders:
        if o.side != "sell":
            continue
        for relief in o.lots:
            found = lots.get((o.account_id, relief.lot_id))
            if found is None or found[0].type != "taxable":
                continue
            lot = found[1]
            share = min(1.0, relief.quantity / lot.quantity) if lot.quantity > 0 else 0.0
            value = relief.quantity * o.est_price
            gain = value - lot.cost_basis * share
            short = h.as_of <= long_term_after(lot.acquired)
            if o.reason == "tax_loss_harvest" and gain < -USD_EPS:
                harvested.append(LossLot(o.account_id, lot.lot_id, o.symbol, -gain, value, short))
            elif short:
                st += gain
            else:
                lt += gain
    if not harvested:
        return ()
    floorless = replace(h, options=replace(h.options, harvest_min_loss=0.0, harvest_losses=True))
    values = harvest_candidates(
        floorless,
        harvested,
        realized_short_usd=st,
        realized_long_usd=lt,
        rule=replace(rule, by_value=False),
    )
    by_key = {(x.account_id, x.lot_id): x for x in harvested}
    return tuple(
        harvest_message(by_key[key].lot_id, by_key[key].symbol, v) for key, v in values.items()
    )
