"""The wash-sale rule (CONTRACT.md section 3, rule 4): the one home of the 30-day window.

- `in_window(as_of, day)`: whether an event dated `day` is within the 30 days around `as_of`
  (trades: either side, the conservative reading of a feed with late dates; lots: before).
- Rule 4a: `recent_wash_groups(h)[0]`, the groups sold at a loss in a taxable account in the last
  30 days: none of them may be bought in any account.
- Rule 4b: `blocked_loss_lots(h)`, the taxable lots that may not be sold at a loss now because a
  buy of their group happened within the 30 days before `as_of`: a buy in `recent_trades`, or any
  *other* lot of the group, in any account, acquired within that window (a lot is a record of a
  buy; the lot being sold is not its own replacement).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from schemas import Household

WASH_WINDOW_DAYS = 30


def in_window(as_of: date, day: date) -> bool:
    """A trade dated `day` falls within the wash window of `as_of` (30 days either side)."""
    return abs((as_of - day).days) <= WASH_WINDOW_DAYS


def acquired_in_window(as_of: date, acquired: date) -> bool:
    """A lot acquired within the 30 days before `as_of` (on `as_of` included) is a recent buy."""
    return 0 <= (as_of - acquired).days <= WASH_WINDOW_DAYS


def _window_start(as_of: date) -> date:
    """The first day a lot acquired counts as a recent buy (`acquired_in_window`)."""
    try:
        return as_of - timedelta(days=WASH_WINDOW_DAYS)
    except OverflowError:
        return date.min


def _group(h: Household, symbol: str) -> str:
    sec = h.securities.get(symbol)
    return sec.group if sec is not None else symbol


def recent_wash_groups(h: Household) -> tuple[set[str], set[str]]:
    """(groups sold at a loss in a taxable account, groups bought anywhere) in `recent_trades`.

    A taxable sale whose `realized_gain` is unknown counts as a loss: the conservative reading.
    Recently acquired lots are buys too, but per lot (see `blocked_loss_lots`).
    """
    types = {a.account_id: a.type for a in h.accounts}
    sold_at_loss: set[str] = set()
    bought: set[str] = set()
    for t in h.recent_trades:
        if not in_window(h.as_of, t.date):
            continue
        group = _group(h, t.symbol)
        if t.side == "buy":
            bought.add(group)
        elif types.get(t.account_id, "taxable") == "taxable" and (
            t.realized_gain is None or t.realized_gain < 0
        ):
            sold_at_loss.add(group)
    return sold_at_loss, bought


def recent_lots_by_group(h: Household) -> dict[str, set[tuple[str, str]]]:
    """Group -> (account_id, lot_id) of every lot acquired within the 30 days before as_of."""
    out: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for a in h.accounts:
        for lot in a.lots:
            if acquired_in_window(h.as_of, lot.acquired):
                out[_group(h, lot.symbol)].add((a.account_id, lot.lot_id))
    return out


_LAST: tuple[Household, frozenset[tuple[str, str]]] | None = None


def blocked_loss_lots(h: Household) -> frozenset[tuple[str, str]]:
    """(account_id, lot_id) of every lot whose sale at a loss would break rule 4b: any lot of a
    group bought in `recent_trades`, or of a group with another recently acquired lot. Only
    meaningful for taxable lots at a loss (a sale elsewhere, or at a gain, is no wash sale).

    One solve asks this of the same (frozen) household several times: the last answer is kept
    for that very object."""
    global _LAST
    last = _LAST
    if last is not None and last[0] is h:
        return last[1]
    out = _blocked_loss_lots(h)
    _LAST = (h, out)
    return out


def _blocked_loss_lots(h: Household) -> frozenset[tuple[str, str]]:
    _, bought = recent_wash_groups(h)
    groups = {symbol: _group(h, symbol) for symbol in h.securities}
    # acquired_in_window for every lot at once: the window is a range of days.
    first, last = _window_start(h.as_of), h.as_of
    recent: dict[str, int] = defaultdict(int)
    for a in h.accounts:
        for lot in a.lots:
            if first <= lot.acquired <= last:
                recent[groups.get(lot.symbol, lot.symbol)] += 1
    if not bought and not recent:
        return frozenset()  # no recent buy of any kind: nothing is blocked
    out: set[tuple[str, str]] = set()
    for a in h.accounts:
        for lot in a.lots:
            g = groups.get(lot.symbol, lot.symbol)
            if g in bought or recent.get(g, 0) - (first <= lot.acquired <= last) > 0:
                out.add((a.account_id, lot.lot_id))
    return frozenset(out)
