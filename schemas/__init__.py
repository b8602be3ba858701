"""The wire format of umh: frozen records, parse/validate/encode with orjson, JSON Schemas."""

from .codec import dumps, loads
from .errors import Issue, UmhError, ValidationError
from .household import (
    ACCOUNT_TYPES,
    CASH,
    MODES,
    Account,
    BandRule,
    Bands,
    Household,
    Lot,
    Options,
    RecentTrade,
    Security,
    TaxRates,
    household_to_json,
    parse_household,
)
from .rebalance import (
    REASONS,
    STATUSES,
    LotRelief,
    Order,
    RebalanceResult,
    Realized,
    order_to_json,
    parse_result,
    result_to_json,
)

__all__ = [
    "ACCOUNT_TYPES", "CASH", "MODES", "REASONS", "STATUSES",
    "Account", "BandRule", "Bands", "Household", "Issue", "Lot", "LotRelief", "Options", "Order",
    "Realized", "RebalanceResult", "RecentTrade", "Security", "TaxRates", "UmhError",
    "ValidationError", "dumps", "household_to_json", "loads", "order_to_json", "parse_household",
    "parse_result", "result_to_json",
]
