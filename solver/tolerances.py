"""Every numerical tolerance and rounding rule of umh, in one place, with its unit in the name."""

from __future__ import annotations

# Weights (fractions of the household's investable value).
WEIGHT_EPS = 1e-9
# Weights and drifts on the wire: 8 decimals is 0.000001 bp, far below any band.
WEIGHT_DECIMALS = 8
# A class counts as out of band only when its drift exceeds the tolerance by more than this, so
# that a household the solver left exactly on a band edge is not re-triggered by float noise.
BAND_EPS = 1e-7
# Money.
USD_EPS = 1e-6
# Cash the model leaves unspent in an account beyond cash_needed, against solver tolerances.
CASH_MARGIN_USD = 0.05
# ... but at most this share of the household value (0.05 USD from 5,000 USD up).
CASH_MARGIN_SHARE = 1e-5
# Headroom the model keeps under max_realized_gain, for the same reason.
GAIN_MARGIN_USD = 0.05
# Headroom the model keeps under max_turnover (dollars of traded value), for the same reason.
TURNOVER_MARGIN_USD = 0.05
# Headroom under what an account may sell with allow_sells false (its shortfall and allowance):
# fractional sells are rounded up to QUANTITY_DECIMALS, which added 0.00018 USD to a sell that
# spent the room exactly (4.614318 AAPL at 239.99; tests/data/quality/q-01557.json).
RAISE_MARGIN_USD = 0.05
# Quantities: fractional shares are rounded down to this many decimals; 6 is what custodians take.
QUANTITY_DECIMALS = 6
QUANTITY_EPS = 1e-9
# A re-solve after rounding is needed only when some amount moved by more than this.
ROUNDING_NOISE_USD = 0.01
# Raising cash_needed may sell this much beyond the need (besides min_trade_value and one whole
# share): the cash margin and the rounding of fractional shares, with room to spare.
RAISE_SLACK_USD = 1.0
# A model sell worth less than this is solver noise and is not rounded up to a whole share.
SELL_NOISE_USD = 1.0
# The exact rung aims this far above min_trade_value, for the rounding of fractional quantities.
MIN_TRADE_MARGIN_USD = 0.01
# Orders smaller than this are dust and never emitted, whatever min_trade_value says.
DUST_USD = 0.01
# HiGHS feasibility/optimality tolerances used for the model and for our own post-check.
SOLVER_FEAS_TOL = 1e-9
CHECK_TOL_USD = 1e-4
#: Turnover (share of the household's value) below which two answers trade "the same".
TURNOVER_EPS = 1e-6
