"""Transaction costs: the one home of their arithmetic (CONTRACT.md section 3, rule 1).

A trade of value v (at `est_price`) costs k v, k = transaction_cost_bps / 10,000: a sell adds
v (1 - k) to the account's cash, a buy takes v (1 + k). The model's rows use the same rate.
"""

from __future__ import annotations

from schemas import Options


def cost_rate(options: Options) -> float:
    """k: the cost per dollar traded."""
    return options.transaction_cost_bps / 1e4


def proceeds(value: float, k: float) -> float:
    """Cash a sell of `value` adds."""
    return value * (1.0 - k)


def outlay(value: float, k: float) -> float:
    """Cash a buy of `value` takes."""
    return value * (1.0 + k)


def cash_change(side: str, value: float, k: float) -> float:
    """The signed change of an account's cash from one order."""
    return proceeds(value, k) if side == "sell" else -outlay(value, k)


def gross_up(need: float, k: float) -> float:
    """What must be sold for `need` dollars of cash after costs."""
    return need / max(1.0 - k, 1e-9)
