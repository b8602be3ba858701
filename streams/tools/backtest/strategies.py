"""The strategies compared on the same paths, flows, bands and costs.

- `household`: umh in `rebalance` mode harvesting by value (`harvest_losses` true, the book's
  `harvest_min_loss`; a loss is harvested only when `solver.harvest.harvest_value` is positive).
- `household_harvest_always`: the same harvesting every loss of at least `harvest_min_loss`
  (the rule before values, `solver.harvest.HARVEST_ALWAYS`), for comparison.
- `household_no_harvest`: the same with `harvest_losses` false.
- `guardrail`: umh in `guardrail` mode (trades only to the band edges, only on a breach or a
  pending withdrawal); harvesting on (by value), which this mode never triggers on its own.
- `household_no_location`: `household_no_harvest` without asset location (`location` empty):
  what location adds, for the attribution of the alpha.
- `per_account`: the account-level baseline `solver.per_account.per_account_orders` (each
  account to the target on its own, FIFO lots, first symbol of the buy list) whenever an
  account leaves its bands or lacks the cash of a withdrawal request; cash it leaves short is
  raised by selling FIFO in that account.
- `per_account_hifo`: the same relieving the highest-cost lots first (also when raising cash):
  what lot relief alone adds to the baseline, for the attribution.
- `buy_and_hold`: never rebalances. Deposits stay cash; a withdrawal request (or a tax bill) is
  raised by selling the account's lots oldest first (FIFO).

Everything else (targets, bands, buy lists, screens, costs, `min_trade_value`,
`max_realized_gain`) is the book's, the same for all. The snapshot's own `cash_needed` is
dropped at the start: the backtest's requests are the only withdrawals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from schemas import Account, Household, LotRelief, Order
from solver.harvest import HARVEST_ALWAYS, HARVEST_BY_VALUE, HarvestRule
from solver.per_account import relief_order, sell_orders
from solver.tolerances import QUANTITY_DECIMALS

#: Cash raised for a withdrawal is this much above the shortfall, against tomorrow's price.
RAISE_BUFFER = 0.01


@dataclass(frozen=True, slots=True)
class Strategy:
    """One way to manage the book. `yearly_gain_budget` (USD of net realized gains a calendar
    year may have) sets the snapshot's `max_realized_gain_year`; with `emulate_year_budget`
    the backtest also sets `max_realized_gain` to what is left of it this year, for a solver
    that does not read the yearly cap (the two together say the same)."""

    name: str
    kind: str  # "umh", "per_account" or "buy_and_hold"
    mode: str = "rebalance"
    harvest: bool = False
    harvest_rule: HarvestRule = HARVEST_BY_VALUE
    yearly_gain_budget: float | None = None
    emulate_year_budget: bool = False
    location: bool = True  # umh: keep the book's `location` preferences
    lot_order: str = "fifo"  # per_account and buy_and_hold: "fifo" or "hifo"

    def configure(self, h: Household) -> Household:
        accounts = tuple(replace(a, cash_needed=0.0) for a in h.accounts)
        options = replace(
            h.options, harvest_losses=self.harvest, max_realized_gain_year=self.yearly_gain_budget
        )
        location = h.location if self.location else {}
        return replace(h, mode=self.mode, options=options, accounts=accounts, location=location)

    def prepare(self, h: Household) -> Household:
        """The snapshot a solve sees (its `realized_this_year` already set)."""
        if self.yearly_gain_budget is None or not self.emulate_year_budget:
            return h
        left = max(self.yearly_gain_budget - h.realized_this_year.net, 0.0)
        cap = h.options.max_realized_gain
        return replace(
            h, options=replace(h.options, max_realized_gain=left if cap is None else min(cap, left))
        )


STRATEGIES: tuple[Strategy, ...] = (
    Strategy("household", "umh", "rebalance", harvest=True),
    Strategy(
        "household_harvest_always", "umh", "rebalance", harvest=True, harvest_rule=HARVEST_ALWAYS
    ),
    Strategy("household_no_harvest", "umh", "rebalance", harvest=False),
    Strategy("household_no_location", "umh", "rebalance", harvest=False, location=False),
    Strategy("guardrail", "umh", "guardrail", harvest=True),
    Strategy("per_account", "per_account"),
    Strategy("per_account_hifo", "per_account", lot_order="hifo"),
    Strategy("buy_and_hold", "buy_and_hold"),
)
BASELINE = "per_account"


def raise_cash(
    h: Household, account: Account, amount_usd: float, rid: str, lot_order: str = "fifo"
) -> list[Order]:
    """Sells of `account`'s lots, oldest first (`hifo`: highest cost first), that raise
    `amount_usd` (plus a small buffer and at least `min_trade_value`) after the transaction
    cost; whole shares rounded up."""
    k = h.options.transaction_cost_bps / 1e4
    remaining = max(amount_usd * (1.0 + RAISE_BUFFER), h.options.min_trade_value)
    by_symbol: dict[str, list[LotRelief]] = {}
    for lot in relief_order(account.lots, lot_order):
        if remaining <= 0:
            break
        sec = h.securities[lot.symbol]
        price = float(sec.price or 0.0)
        if price <= 0:
            continue
        qty = min(lot.quantity, remaining / (price * (1.0 - k)))
        if not sec.fractional:
            qty = min(lot.quantity, float(math.ceil(qty - 1e-9)))
        else:
            qty = min(lot.quantity, round(qty + 0.5 * 10**-QUANTITY_DECIMALS, QUANTITY_DECIMALS))
        if qty <= 0:
            continue
        by_symbol.setdefault(lot.symbol, []).append(LotRelief(lot.lot_id, qty))
        remaining -= qty * price * (1.0 - k)
    return sell_orders(h, account, by_symbol, rid, "raise_cash")
