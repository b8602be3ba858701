"""Lots: the holding period, the gain of a sale, and the order lots are relieved in.

The one home of these rules; the model, the orders, the self-check and the diagnostics read them
from here.
"""

from __future__ import annotations

from datetime import date


def long_term_after(acquired: date) -> date:
    """The anniversary: a sale after it is long-term, on or before it short-term.

    A lot bought on 29 February has its anniversary on 1 March (the conservative reading).
    """
    try:
        return acquired.replace(year=acquired.year + 1)
    except ValueError:
        return date(acquired.year + 1, 3, 1)


def is_long_term(acquired: date, sold: date) -> bool:
    return sold > long_term_after(acquired)


def days_to_long_term(acquired: date, as_of: date) -> int:
    """Days until a sale becomes long-term (0 when it already is)."""
    return max(0, (long_term_after(acquired) - as_of).days + 1)


def sale_gain(quantity_sold: float, price: float, quantity_held: float, basis: float) -> float:
    """Realized gain of selling `quantity_sold` of a lot: proceeds less pro-rata basis (before
    transaction costs, as the contract's `realized` reports it)."""
    return quantity_sold * price - basis * quantity_sold / quantity_held


def gain_fraction(market_value: float, basis: float) -> float:
    """Gain per dollar sold: 1 - basis / market value (negative for a loss)."""
    return 1.0 - basis / market_value if market_value > 0 else 0.0
