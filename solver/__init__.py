"""The household optimisation: pure functions over frozen records and numpy arrays."""

from .check import hard_rule_violations
from .drift import (
    DriftReport,
    asset_classes,
    cash_shortfalls,
    harvestable_lots,
    household_drift,
    missing_prices,
    triggers,
)
from .solve import rebalance_id, solve
from .trades import apply_orders

__all__ = [
    "DriftReport",
    "apply_orders",
    "asset_classes",
    "cash_shortfalls",
    "hard_rule_violations",
    "harvestable_lots",
    "household_drift",
    "missing_prices",
    "rebalance_id",
    "solve",
    "triggers",
]
