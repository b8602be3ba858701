"""The wash-sale window: which groups recent trades block, in event time (`as_of`)."""

from __future__ import annotations

from datetime import timedelta

from schemas import Household

WASH_WINDOW = timedelta(days=30)


def recent_wash_groups(h: Household) -> tuple[set[str], set[str]]:
    """(groups sold at a loss in a taxable account, groups bought anywhere) in the last 30 days.

    A taxable sale whose `realized_gain` is unknown counts as a loss: the conservative reading.
    """
    types = {a.account_id: a.type for a in h.accounts}
    sold_at_loss: set[str] = set()
    bought: set[str] = set()
    for t in h.recent_trades:
        if abs((h.as_of - t.date).days) > WASH_WINDOW.days:
            continue
        sec = h.securities.get(t.symbol)
        group = sec.group if sec is not None else t.symbol
        if t.side == "buy":
            bought.add(group)
        elif types.get(t.account_id, "taxable") == "taxable" and (
            t.realized_gain is None or t.realized_gain < 0
        ):
            sold_at_loss.add(group)
    return sold_at_loss, bought
