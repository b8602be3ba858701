"""The outside world for demos and benchmarks: market feed, OMS, custodian, on the contract topics.

Each simulator is an async class with a `run(stop)` coroutine (stop is an `asyncio.Event`), a
`prefix` for the topic names and `counters` of what it sent and received.
"""

from .custodian import CustodianSimulator, draw_flow, settling_withdrawal
from .market import CLASS_PARAMS, FACTOR_CORRELATION, MarketModel, MarketSimulator
from .oms import OmsSimulator, fill_for_order, fill_id_for, fills_for_result
from .wire import (
    TOPICS,
    Counters,
    assigned_consumer,
    ensure_topics,
    event_clock,
    make_producer,
    topic,
)

__all__ = [
    "CLASS_PARAMS",
    "FACTOR_CORRELATION",
    "TOPICS",
    "Counters",
    "CustodianSimulator",
    "MarketModel",
    "MarketSimulator",
    "OmsSimulator",
    "assigned_consumer",
    "draw_flow",
    "ensure_topics",
    "event_clock",
    "fill_for_order",
    "fill_id_for",
    "fills_for_result",
    "make_producer",
    "settling_withdrawal",
    "topic",
]
