"""What to do about one household now: nothing, an alert, or a solve and why. Pure.

The streaming shell decodes an event, builds the household as the solver sees it, computes its
drift once and asks `decide`; it solves when told to, and asks `after_solve` which alert the
outcome calls for. No I/O, no clock: the event time arrives as an argument and is the alert's
`ts`. The contract's alert actions (section 4) are all decided here:

- `awaiting_prices`: a held symbol has no known price (no drift can be computed yet);
- `pending_orders`: a breach while an earlier rebalance still waits for fills (no solve);
- `monitor_only`: a breach of a household in `monitor` mode (never a solve);
- `rebalance_submitted` / `guardrail_breach`: a solve published orders (by mode);
- `band_unreachable`: a solve that published nothing for a breach, or a breach the shell does
  not retry yet (`Standing.paused`: a solve for it published nothing a moment ago).

An alert is sent once per state: `Standing.alerted` remembers the last alerted breach (the
classes out of band, or the missing symbols) and an alert goes out only when it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from schemas import Household, RebalanceResult
from schemas.events import Breach, DriftAlert

from .drift import DriftReport, missing_prices, triggers

AWAITING = "awaiting:"  # prefix of `alerted` while symbols wait for prices


@dataclass(frozen=True, slots=True)
class Standing:
    """What the stream remembers about a household beside its holdings.

    `open_orders`: an open rebalance waits for fills (and has not expired). `alerted`: the last
    alerted state ("us_equity,cash", "awaiting:VTI", or None when last seen in band). `paused`:
    a solve for this breach published nothing recently (the shell's pacing, not a rule).
    """

    open_orders: bool = False
    alerted: str | None = None
    paused: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """`solve`: the triggers a solve answers (empty: no solve). `alert`: to publish now.
    `alerted`: what `Standing.alerted` becomes. `priority`: how far the household is outside
    its bands (the largest excess of |drift| over tolerance, 0 when inside): larger first."""

    solve: tuple[str, ...] = ()
    alert: DriftAlert | None = None
    alerted: str | None = None
    priority: float = 0.0

    @property
    def kind(self) -> str:
        return "solve" if self.solve else ("alert" if self.alert is not None else "nothing")


def band_excess(report: DriftReport) -> float:
    """The largest amount by which a class is outside its band (0 when every class is inside)."""
    if not len(report.classes):
        return 0.0
    return float(max(0.0, np.max(np.abs(report.drift) - report.tolerance)))


def _alert(
    h: Household, report: DriftReport | None, action: str, ts: datetime, missing: tuple[str, ...]
) -> DriftAlert:
    breaches: tuple[Breach, ...] = ()
    if report is not None:
        breaches = tuple(
            Breach(c, float(w), float(t), float(tol))
            for c, w, t, tol, b in zip(
                report.classes,
                report.weight,
                report.target,
                report.tolerance,
                report.breached,
                strict=True,
            )
            if b
        )
    return DriftAlert(
        household_id=h.household_id,
        ts=ts,
        max_abs_drift=0.0 if report is None else report.max_abs_drift,
        breaches=breaches,
        action=action,
        missing_prices=missing,
    )


def _with_alert(
    h: Household, report: DriftReport, standing: Standing, action: str | None, ts: datetime
) -> Decision:
    band = ",".join(report.out_of_band) or None
    if band == standing.alerted:
        return Decision(alerted=band, priority=band_excess(report))
    alert = _alert(h, report, action, ts, ()) if band is not None and action else None
    return Decision(alert=alert, alerted=band, priority=band_excess(report))


def decide(h: Household, report: DriftReport | None, standing: Standing, ts: datetime) -> Decision:
    """The decision for household `h` (the solver's view, prices applied) at event time `ts`.

    `report` is `household_drift(h)`, computed once by the caller; None when some held symbol has
    no price (then it cannot be computed and the answer is an `awaiting_prices` alert).
    """
    missing = missing_prices(h)
    if missing or report is None:
        key = AWAITING + ",".join(missing)
        if key == standing.alerted:
            return Decision(alerted=key)
        return Decision(alert=_alert(h, None, "awaiting_prices", ts, missing), alerted=key)
    wants = triggers(h, report)
    if standing.open_orders:
        return _with_alert(h, report, standing, "pending_orders", ts)
    if h.mode == "monitor":
        return _with_alert(h, report, standing, "monitor_only", ts)
    if wants and not standing.paused:
        return Decision(solve=wants, alerted=standing.alerted, priority=band_excess(report))
    return _with_alert(h, report, standing, "band_unreachable" if wants else None, ts)


def after_solve(
    h: Household,
    report: DriftReport,
    standing: Standing,
    result: RebalanceResult,
    ts: datetime,
) -> Decision:
    """The alert a solve's outcome calls for (`report`: the drift the solve started from)."""
    if result.status == "rebalanced" and result.orders:
        action = "guardrail_breach" if h.mode == "guardrail" else "rebalance_submitted"
    elif result.status == "no_action" and h.mode == "guardrail":
        action = "guardrail_breach"
    else:
        action = "band_unreachable"
    return _with_alert(h, report, standing, action, ts)
