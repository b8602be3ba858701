"""The solver's own check of the contract's hard rules on a set of orders, before publishing.

Independent of the model: it reads only the household and the orders, so a modelling or
rounding mistake shows up here instead of at the order-management system.
"""

from __future__ import annotations

from collections import defaultdict

from schemas import Account, Household, Lot, Order

from .costs import cash_change, cost_rate, gross_up
from .lots import sale_gain
from .problem import gain_cap
from .tolerances import CHECK_TOL_USD, QUANTITY_EPS, RAISE_SLACK_USD
from .wash import blocked_loss_lots, recent_wash_groups


def hard_rule_violations(h: Household, orders: tuple[Order, ...]) -> list[str]:
    """Every broken hard rule (section 3, rules 1-6), as sentences; empty when all hold."""
    problems: list[str] = []
    accounts = {a.account_id: a for a in h.accounts}
    k = cost_rate(h.options)
    cash = {a.account_id: a.cash for a in h.accounts}
    gains = 0.0
    loss_groups: set[str] = set()
    sold_value: dict[tuple[str, str], float] = defaultdict(float)
    blocked = blocked_loss_lots(h)
    positions: dict[str, dict[str, float]] = {}  # account -> symbol -> shares held
    by_id: dict[str, dict[str, Lot]] = {}  # account -> its lots by id
    for o in orders:
        account = accounts.get(o.account_id)
        sec = h.securities.get(o.symbol)
        if account is None or sec is None or sec.price is None:
            problems.append(f"{o.order_id}: unknown account or security")
            continue
        if (
            not sec.fractional
            and abs(o.quantity - round(o.quantity)) > QUANTITY_EPS
            and not (o.side == "sell" and _sells_whole_lots(account.lots, o))
        ):
            problems.append(f"{o.order_id}: {o.symbol} trades in whole shares only")
        if o.side == "sell":
            cash[o.account_id] += cash_change("sell", o.est_value, k)
            lots = by_id.get(o.account_id)
            if lots is None:
                lots = by_id[o.account_id] = {lot.lot_id: lot for lot in account.lots}
            gains += _check_sell(h, account, o, problems, loss_groups, blocked, lots)
            sold_value[(o.account_id, o.symbol)] += o.est_value
        else:
            cash[o.account_id] += cash_change("buy", o.est_value, k)
            _check_buy(h, account, o, problems)
        if o.est_value < h.options.min_trade_value - CHECK_TOL_USD:
            held = positions.get(o.account_id)
            if held is None:
                held = positions[o.account_id] = _positions(account)
            position = held.get(o.symbol, 0)
            if not (o.side == "sell" and abs(o.quantity - position) < QUANTITY_EPS):
                problems.append(f"{o.order_id}: below min_trade_value")
    for account_id, left in cash.items():
        if left < accounts[account_id].cash_needed - CHECK_TOL_USD:
            problems.append(f"{account_id}: cash {left:.2f} below cash_needed")
    cap = gain_cap(h)
    if cap is not None and gains > cap + CHECK_TOL_USD:
        problems.append(f"realized gains {gains:.2f} above the tax budget {cap:.2f}")
    problems.extend(_check_wash(h, orders, loss_groups))
    problems.extend(_check_controls(h, orders))
    return problems


def _positions(account: Account) -> dict[str, float]:
    """Shares held per symbol (summed in lot order)."""
    out: dict[str, float] = {}
    for lot in account.lots:
        out[lot.symbol] = out.get(lot.symbol, 0) + lot.quantity
    return out


def raise_allowance_usd(h: Household, account: Account) -> float:
    """What an account's non-screen sells may raise beyond its shortfall (grossed up by costs):
    the largest of min_trade_value, the account's dearest whole share and RAISE_SLACK_USD."""
    whole = [
        float(h.securities[lot.symbol].price or 0.0)
        for lot in account.lots
        if not h.securities[lot.symbol].fractional
    ]
    return max([h.options.min_trade_value, RAISE_SLACK_USD, *whole])


def _check_controls(h: Household, orders: tuple[Order, ...]) -> list[str]:
    """Locked lots, allow_sells and max_turnover (raising cash_needed is always allowed)."""
    problems: list[str] = []
    k = cost_rate(h.options)
    raised = 0.0
    for a in h.accounts:
        locked = {lot.lot_id for lot in a.lots if lot.locked}
        sells = [o for o in orders if o.account_id == a.account_id and o.side == "sell"]
        for o in sells:
            if any(r.lot_id in locked for r in o.lots):
                problems.append(f"{o.order_id}: sells a locked lot")
        plain = [o for o in sells if o.symbol not in a.excluded_symbols]
        value = sum(o.est_value for o in plain)
        need = gross_up(max(a.cash_needed - a.cash, 0.0), k)
        room = need + raise_allowance_usd(h, a) if need > 0 else 0.0
        # Raising cash: every sell of a short account counts, screened or not, up to its room.
        raised += min(sum(o.est_value for o in sells), room)
        if not h.options.allow_sells and value > room + CHECK_TOL_USD:
            problems.append(f"{a.account_id}: sells {value:.2f} with allow_sells false")
    cap = h.options.max_turnover
    if cap is not None:
        value = sum(
            a.cash
            - a.cash_needed
            + sum(lot.quantity * float(h.securities[lot.symbol].price or 0.0) for lot in a.lots)
            for a in h.accounts
        )
        traded = sum(o.est_value for o in orders)
        if traded > cap * value + raised + CHECK_TOL_USD:
            problems.append(f"traded {traded:.2f} above max_turnover {cap} of the value")
    return problems


def _sells_whole_lots(lots: tuple[Lot, ...], o: Order) -> bool:
    held = {lot.lot_id: lot.quantity for lot in lots}
    return all(
        abs(held.get(r.lot_id, -1.0) - r.quantity) < QUANTITY_EPS
        or abs(r.quantity - round(r.quantity)) < QUANTITY_EPS
        for r in o.lots
    )


def _check_sell(
    h: Household,
    account: Account,
    o: Order,
    problems: list[str],
    loss_groups: set[str],
    blocked: frozenset[tuple[str, str]],
    lots: dict[str, Lot],
) -> float:
    total = 0.0
    gain = 0.0
    for r in o.lots:
        lot = lots.get(r.lot_id)
        if lot is None or lot.symbol != o.symbol:
            problems.append(f"{o.order_id}: lot {r.lot_id} is not a {o.symbol} lot of the account")
            continue
        if r.quantity > lot.quantity + QUANTITY_EPS:
            problems.append(f"{o.order_id}: sells more of {r.lot_id} than held")
        total += r.quantity
        lot_gain = sale_gain(r.quantity, o.est_price, lot.quantity, lot.cost_basis)
        if account.type == "taxable":
            gain += lot_gain
            # a loss for rule 4 when the proceeds net of the selling cost are below the basis
            selling_cost = r.quantity * o.est_price * cost_rate(h.options)
            if lot_gain - selling_cost < -CHECK_TOL_USD:
                loss_groups.add(h.securities[o.symbol].group)
                if (account.account_id, lot.lot_id) in blocked:
                    problems.append(
                        f"{o.order_id}: loss sale of {lot.lot_id} within 30 days of a buy of "
                        "its wash group (rule 4b)"
                    )
    if abs(total - o.quantity) > QUANTITY_EPS * max(1.0, o.quantity):
        problems.append(f"{o.order_id}: lot quantities do not sum to the order's")
    return gain


def _check_buy(h: Household, account: Account, o: Order, problems: list[str]) -> None:
    sec = h.securities[o.symbol]
    lists = {**h.buy_list, **account.buy_list}
    listed = any(
        o.symbol in symbols
        for cls, symbols in lists.items()
        if cls not in account.no_buy_asset_classes
    )
    if not listed:
        problems.append(f"{o.order_id}: {o.symbol} is not on a buy list for {account.account_id}")
    if o.symbol in account.excluded_symbols:
        problems.append(f"{o.order_id}: {o.symbol} is excluded in {account.account_id}")
    if any(sec.exposures.get(c, 0.0) > 0 for c in account.no_buy_asset_classes):
        problems.append(f"{o.order_id}: buys a class {account.account_id} may not buy")


def _check_wash(h: Household, orders: tuple[Order, ...], loss_groups: set[str]) -> list[str]:
    sold_at_loss, _ = recent_wash_groups(h)
    problems = []
    for o in orders:
        group = h.securities[o.symbol].group
        if o.side == "buy" and group in (sold_at_loss | loss_groups):
            problems.append(f"{o.order_id}: buys {group} within 30 days of a loss sale")
    return problems
