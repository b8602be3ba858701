"""`umh backtest`: the tax value of household management, measured on simulated years.

A seeded synthetic book (streams.tools.synthetic), daily prices (correlated random walks or a CSV),
one client cash-flow schedule, and five strategies run on the same paths: umh household
rebalancing with and without loss harvesting, umh guardrail, the per-account baseline and buy
and hold. Outputs `summary.json`, `report.md` and plots.
"""

from .command import add_arguments, run

__all__ = ["add_arguments", "run"]
