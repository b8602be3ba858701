"""The market data feed: correlated random walks of the universe's prices, published on `prices`.

The model (pure, `MarketModel`) is a one-factor-per-class geometric random walk. For a security
with class exposures w (a pure class has w = e_c; a balanced fund its look-through weights):

    log P_i(t + dt) - log P_i(t) = (mu_i - var_i / 2) dt + sqrt(dt) (b_i . F + s_i eps_i)

    F ~ N(0, R) the class factors (R = `FACTOR_CORRELATION` over us_equity, intl_equity,
    fixed_income); eps_i ~ N(0, 1) independent;
    pure class c: b_i = sigma_c sqrt(rho_c) e_c, s_i = sigma_c sqrt(1 - rho_c)
    balanced:     b_i = sum_c w_c sigma_c sqrt(rho_c) e_c, s_i = `BALANCED_IDIO_VOL`
    mu_i = sum_c w_c mu_c;  var_i = b_i R b_i' + s_i^2

so two securities of class c correlate rho_c, and the classes move together as R says. Annual
drift mu_c, volatility sigma_c and rho_c are in `CLASS_PARAMS`. Time runs faster than the wall
clock by `speed` (simulated years per wall second; the default is one trading day a second) so
that a demo of a minute sees drift worth a quarter.

`MarketSimulator` publishes `price/v1` messages keyed by symbol at a given rate of ticks (one
message is one tick); each price carries its event time `ts` (the simulator's `clock`, UTC).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from aiokafka import AIOKafkaProducer
from numpy.typing import NDArray

from schemas import Security, dumps
from schemas.events import Price, price_to_json

from .wire import Counters, make_producer, topic, utc_now

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

FACTOR_CLASSES = ("us_equity", "intl_equity", "fixed_income")


@dataclass(frozen=True, slots=True)
class ClassParams:
    """Annual drift `mu`, annual volatility `sigma`, within-class correlation `rho`."""

    mu: float
    sigma: float
    rho: float


CLASS_PARAMS: dict[str, ClassParams] = {
    "us_equity": ClassParams(mu=0.07, sigma=0.17, rho=0.85),
    "intl_equity": ClassParams(mu=0.05, sigma=0.18, rho=0.80),
    "fixed_income": ClassParams(mu=0.03, sigma=0.06, rho=0.60),
}
#: Correlation of the class factors, in FACTOR_CLASSES order.
FACTOR_CORRELATION = np.array(
    [
        [1.00, 0.80, 0.10],
        [0.80, 1.00, 0.05],
        [0.10, 0.05, 1.00],
    ]
)
#: Residual annual volatility of a look-through (balanced) fund around its classes.
BALANCED_IDIO_VOL = 0.02
TRADING_DAYS = 252
#: Default speed: one trading day of simulated time per wall second.
DAY_PER_SECOND = 1.0 / TRADING_DAYS


@dataclass(frozen=True, slots=True)
class MarketModel:
    """The model's arrays, all along `symbols` (shape (N,)) and FACTOR_CLASSES (K = 3)."""

    symbols: tuple[str, ...]
    loading: FloatArray  # (N, K) b_i
    idio_vol: FloatArray  # (N,) s_i
    drift: FloatArray  # (N,) mu_i - var_i / 2, per year
    chol: FloatArray  # (K, K) lower Cholesky factor of FACTOR_CORRELATION

    @classmethod
    def from_universe(
        cls,
        universe: Mapping[str, Security],
        params: Mapping[str, ClassParams] = CLASS_PARAMS,
        correlation: FloatArray = FACTOR_CORRELATION,
    ) -> MarketModel:
        symbols = tuple(universe)
        n, k = len(symbols), len(FACTOR_CLASSES)
        loading = np.zeros((n, k))
        idio = np.zeros(n)
        mu = np.zeros(n)
        for i, s in enumerate(symbols):
            exposures = universe[s].exposures
            pure = len(exposures) == 1
            for c, w in exposures.items():
                p = params.get(c)
                if p is None:  # a class without a factor (none in the synthetic universe)
                    continue
                j = FACTOR_CLASSES.index(c)
                loading[i, j] += w * p.sigma * math.sqrt(p.rho)
                mu[i] += w * p.mu
                if pure:
                    idio[i] = p.sigma * math.sqrt(1.0 - p.rho)
            if not pure:
                idio[i] = BALANCED_IDIO_VOL
        var = np.einsum("ik,kl,il->i", loading, correlation, loading) + idio**2
        return cls(
            symbols=symbols,
            loading=loading,
            idio_vol=idio,
            drift=mu - 0.5 * var,
            chol=np.asarray(np.linalg.cholesky(correlation), dtype=np.float64),
        )

    def log_returns(self, dt_years: float, n_steps: int, rng: np.random.Generator) -> FloatArray:
        """(n_steps, N) log returns of consecutive steps of `dt_years` each."""
        k = len(FACTOR_CLASSES)
        factors = rng.standard_normal((n_steps, k)) @ self.chol.T
        eps = rng.standard_normal((n_steps, len(self.symbols)))
        shocks = factors @ self.loading.T + eps * self.idio_vol
        out: FloatArray = self.drift * dt_years + math.sqrt(dt_years) * shocks
        return out

    def step(self, prices: FloatArray, dt_years: float, rng: np.random.Generator) -> FloatArray:
        """Prices after one step of `dt_years`."""
        out: FloatArray = prices * np.exp(self.log_returns(dt_years, 1, rng)[0])
        return out


@dataclass(slots=True)
class MarketSimulator:
    """Publishes the universe's prices on `{prefix}prices`; `prices` is the live price dict.

    Other simulators (the OMS) read `prices` to fill at the current simulated price.
    """

    bootstrap: str
    prefix: str
    universe: Mapping[str, Security]
    seed: int = 0
    speed: float = DAY_PER_SECOND  # simulated years per wall second
    counters: Counters = field(default_factory=Counters)
    clock: Callable[[], datetime] = utc_now  # event time of what it publishes
    prices: dict[str, float] = field(default_factory=dict)
    model: MarketModel = field(init=False)
    _rng: np.random.Generator = field(init=False)
    _vector: FloatArray = field(init=False)

    def __post_init__(self) -> None:
        self.model = MarketModel.from_universe(self.universe)
        self._rng = np.random.default_rng(self.seed)
        self._vector = np.array([float(self.universe[s].price or 1.0) for s in self.model.symbols])
        self.prices.update(zip(self.model.symbols, self._vector.tolist(), strict=True))

    def advance(self, wall_seconds: float) -> None:
        """Move every price by `wall_seconds` of wall time (times `speed` of simulated time)."""
        if wall_seconds <= 0:
            return
        self._vector = self.model.step(self._vector, wall_seconds * self.speed, self._rng)
        self.prices.update(zip(self.model.symbols, np.round(self._vector, 4).tolist(), strict=True))

    def shock(self, returns: Mapping[str, float]) -> None:
        """An instantaneous move: class -> simple return (0.08 = +8%), by look-through exposure.

        For benchmarks and demos that want a market-wide tick that pushes households out of band.
        """
        factor = np.ones(len(self.model.symbols))
        for i, s in enumerate(self.model.symbols):
            move = sum(w * returns.get(c, 0.0) for c, w in self.universe[s].exposures.items())
            factor[i] = 1.0 + move
        self._vector = self._vector * factor
        self.prices.update(zip(self.model.symbols, np.round(self._vector, 4).tolist(), strict=True))

    def message(self, symbol: str, ts: datetime) -> bytes:
        return dumps(price_to_json(Price(symbol, self.prices[symbol], ts)))

    async def publish_all(self, producer: AIOKafkaProducer, ts: datetime | None = None) -> int:
        """One market-wide tick: every symbol's current price with the same `ts`; returns count."""
        when = ts or self.clock()
        name = topic(self.prefix, "prices")
        futures = [
            await producer.send(name, self.message(s, when), key=s) for s in self.model.symbols
        ]
        await asyncio.gather(*futures)
        self.counters.add_sent("prices", len(futures))
        return len(futures)

    async def run(self, ticks_per_s: float, stop: asyncio.Event, step_s: float = 0.25) -> None:
        """Publish `ticks_per_s` price messages a second until `stop` is set.

        Every `step_s` the whole market advances; then the next ticks_per_s * step_s symbols (round
        robin over the universe) are published with their new prices. At least one tick a step.
        """
        producer = make_producer(self.bootstrap)
        await producer.start()
        name = topic(self.prefix, "prices")
        symbols = self.model.symbols
        cursor = 0
        budget = 0.0
        loop = asyncio.get_running_loop()
        last = loop.time()
        try:
            while not stop.is_set():
                now = loop.time()
                self.advance(now - last)
                budget += ticks_per_s * (now - last)
                last = now
                n = int(budget)
                budget -= n
                ts = self.clock()
                for _ in range(n):
                    s = symbols[cursor]
                    cursor = (cursor + 1) % len(symbols)
                    await producer.send(name, self.message(s, ts), key=s)
                if n:
                    self.counters.add_sent("prices", n)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=step_s)
        finally:
            await producer.stop()
