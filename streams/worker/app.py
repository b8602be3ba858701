"""The Faust app of `umh worker`: topics, the `households` table, agents, the price feed, timers.

Agents are short loops: decode, hand the record to the `Rebalancer`, dead-letter what cannot be
decoded or applied. Every input topic is keyed by household_id and co-partitioned with the table
(same partition count, same murmur2 key placement), and every agent runs with concurrency 1
(faust issue #606: concurrency > 1 can commit past an unprocessed message).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust

from schemas import ValidationError
from streams.kafka import commit_gaps, recovery_generation, uncommitted_seek
from streams.kafka.topics import (
    TopicNames,
    changelog_topic,
    min_insync_replicas,
    partition_for,
    ssl_context,
)
from streams.settings import Settings
from streams.worker import inputs
from streams.worker.dead_letters import dead_letter
from streams.worker.events import WorkerEvents
from streams.worker.metrics import Metrics
from streams.worker.prices import PriceFeed
from streams.worker.rebalancer import Rebalancer, UnknownHousehold
from streams.worker.solving import SolveFn
from streams.worker.stall import StallWatch
from streams.worker.state import HouseholdState, decode_state, encode_state
from streams.worker.store import HouseholdRocksDB  # noqa: F401 - registers umhrocksdb://

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # a tick date that never moves a household's day
WORKER_HEADER = "umh-worker"  # header on every output message: the producing worker's URL
#: Decoded household states kept in memory (the most recently used); the rest are table bytes.
DECODED_CACHE = 2048
#: How long a flush waits for Faust's producer buffer to hand over every queued record.
DRAIN_TIMEOUT_S = 60.0


async def drain_buffer(buffer: Any, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
    """Hand every record queued in Faust's producer buffer to the Kafka client.

    Table writes (the changelog records) wait in that buffer. Faust's own `buffer.flush()`
    gives up as soon as no record was sent for 0.1 s, which a busy loop easily exceeds, and
    Faust calls it before committing input offsets and on a partition revocation. A commit
    could then cover fills whose state changes were still queued: a worker killed next lost
    them for good (its successor never replays a committed fill; the household kept its open
    rebalance and was never rebalanced again). A revocation could leave writes queued while the
    new assignment's recovery read the changelog up to its high-water mark, overwriting the
    newer in-memory states with older ones. This waits for the buffer to be empty.
    """
    deadline = time.monotonic() + timeout_s
    while buffer.size and time.monotonic() < deadline:
        await buffer.flush_atmost(int(buffer.size))
    if buffer.size:
        log.warning("%d table writes still queued after %.0f s", buffer.size, timeout_s)


def drain_on_flush(producer: Any) -> None:
    """Make the producer's flush (before each offset commit, on revocation) drain its buffer
    completely (`drain_buffer`) instead of stopping at the first 0.1 s without a send."""
    buffer = getattr(producer, "buffer", None)
    if buffer is None or getattr(buffer, "_umh_drains", False):
        return

    async def flush() -> None:
        await drain_buffer(buffer)

    buffer.flush = flush
    buffer._umh_drains = True


def recovery_superseded(app: Any) -> bool:
    """Whether the table recovery completing now was started for an earlier assignment than
    the consumer's latest (its replay may have been cut short; another pass follows)."""
    tables = getattr(app, "tables", None)
    recovery = getattr(tables, "_recovery", None)  # the manager's, once it exists
    generation = None if recovery is None else recovery_generation.completing_generation(recovery)
    return generation is not None and generation != app.consumer_generation_id


class TableStore:
    """The `households` table as the Rebalancer's store, with a decoded cache in front of it.

    Values are `encode_state` bytes (compact: ~2.3 KB for a household of 60 lots, where the
    plain JSON was ~10 KB), and that is what one change writes to the changelog. The decoded
    states of the most recently used households are kept in a bounded cache
    (`DECODED_CACHE`): the rest live only as those bytes (memory per household). Only keys of
    partitions this worker owns now are visible through `keys()`; the cache is dropped on every
    revocation.
    """

    def __init__(
        self,
        table: Any,
        owned: Any,
        partitions: int,
        producer: Any = None,
        events: WorkerEvents | None = None,
        cache_size: int = DECODED_CACHE,
        metrics: Metrics | None = None,
    ) -> None:
        self.table = table
        self.events = events or WorkerEvents()
        self.owned = owned  # () -> set of owned partition numbers
        self.partitions = partitions
        self.producer = producer  # () -> Faust's producer, for `persist`
        self.cache: OrderedDict[str, HouseholdState] = OrderedDict()
        self.cache_size = cache_size
        self.metrics = metrics or Metrics()

    def get(self, household_id: str) -> HouseholdState | None:
        state = self.cache.get(household_id)
        if state is not None:
            self.cache.move_to_end(household_id)
            return state
        raw = self.table.get(household_id.encode())
        if raw is None:
            return None
        state = decode_state(raw)
        self._remember(state)
        return state

    def _remember(self, state: HouseholdState) -> None:
        self.cache[state.household_id] = state
        self.cache.move_to_end(state.household_id)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)

    def put(self, state: HouseholdState) -> None:
        self._remember(state)
        value = encode_state(state)
        self.metrics.changelog_bytes.inc(len(value))
        self.metrics.changelog_writes.inc()
        self.table[state.household_id.encode()] = value
        self.events.changed(state.household_id)

    async def persist(self, state: HouseholdState) -> None:
        """Write the household's current table value to the changelog and wait for the ack.

        A table write only queues its changelog record in Faust's producer buffer; this sends
        the same bytes directly and awaits the broker's acknowledgement (acks=all), so the
        write survives a kill -9 that follows. The queued records are handed over first
        (`drain_buffer`): the direct send must not overtake an older queued state of the same
        household, which would then land after it as the changelog's last word.
        """
        if self.producer is None:
            return
        key = state.household_id.encode()
        raw = self.table.get(key)
        if raw is None:
            return
        producer = self.producer()
        buffer = getattr(producer, "buffer", None)
        if buffer is not None:
            await drain_buffer(buffer)
        topic = self.table.changelog_topic.get_topic_name()
        partition = partition_for(state.household_id, self.partitions)
        await producer.send_and_wait(topic, key, raw, partition, None, None)

    def delete(self, household_id: str) -> None:
        self.cache.pop(household_id, None)
        key = household_id.encode()
        if key in self.table:
            del self.table[key]
        self.events.changed(household_id)

    def ids(self) -> Iterable[str]:
        owned = self.owned()
        for key in list(self.table.keys()):
            hid = key.decode() if isinstance(key, bytes) else str(key)
            if partition_for(hid, self.partitions) in owned:
                yield hid


@dataclass
class UmhApp:
    """The Faust app and the pieces the web routes and tests reach into."""

    app: faust.App
    settings: Settings
    rebalancer: Rebalancer
    store: TableStore
    feed: PriceFeed
    metrics: Metrics
    topics: TopicNames
    agents: dict[str, Any]
    events: WorkerEvents

    def household_states(self) -> dict[str, HouseholdState]:
        """The states of the households this worker owns now (for the operations console)."""
        out: dict[str, HouseholdState] = {}
        for hid in self.store.ids():
            state = self.store.get(hid)
            if state is not None:
                out[hid] = state
        return out

    def healthy(self) -> bool:
        """Running, past recovery, price feed ready, and owning at least one partition."""
        app: Any = self.app
        try:
            assigned = bool(app.assignor.assigned_actives())
            recovered = app.tables.recovery.completed.is_set()
        except Exception:
            return False
        return (
            bool(app.started)
            and assigned
            and recovered
            and self.feed.ready.is_set()
            and not app.rebalancing
        )


def _credentials(settings: Settings) -> Any:
    context = ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            ssl_context=context,
            mechanism=settings.sasl_mechanism or "PLAIN",
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(settings: Settings, *, solve: SolveFn | None = None) -> UmhApp:
    names = TopicNames.of(settings)
    rf = settings.replication_factor or 1  # the worker resolves it from the cluster first
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        broker_credentials=_credentials(settings),
        store=settings.table_store,  # RocksDB when UMH_DATA_DIR is set (a restart is quick)
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        # changelog and Faust's internal topics: same factor as the contract's topics
        topic_replication_factor=rf,
        # a warm copy of every table partition on another worker: a takeover after a crash
        # replays only the tail of the changelog instead of all of it
        table_standby_replicas=settings.standby_replicas,
        web_enabled=settings.web_enabled,
        web_port=settings.web_port or 6066,
        web_bind=settings.web_host,
        web_host=settings.advertised_host,
        # what peers forward console requests to (assignment metadata): never a wildcard
        canonical_url=settings.canonical_url,
        datadir=settings.data_dir or tempfile.mkdtemp(prefix=f"umh-{settings.app_id}-"),
        broker_session_timeout=6.0,  # takeover after a crash; Kafka's minimum by default
        broker_heartbeat_interval=1.0,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
    )

    # the producer's flush (before each offset commit, on revocation) drains its buffer: an
    # input offset is never committed ahead of the table writes its message made
    new_producer = app._new_producer

    def producer_that_drains() -> Any:
        producer = new_producer()
        drain_on_flush(producer)
        return producer

    # records Faust drops while partitions move are read again even on a partition with no
    # commit yet (aiokafka's seek back to committed offsets skips those): no input lost
    new_consumer = app._new_consumer
    inputs_topics = (names.households, names.fills, names.cash_flows)

    def consumer_that_rereads() -> Any:
        consumer: Any = new_consumer()
        heads: dict[Any, int] = {}  # first offsets of partitions without a commit
        uncommitted_seek.install(consumer, inputs_topics, heads)
        metrics.workarounds.labels(name="uncommitted_seek").set(1)
        # and a commit never passes a record no agent applied (Faust's off-by-ones, and the
        # records its stream skips yet acknowledges); a gap in fills or flows counts once read
        # twice (the stall watch reads them again)
        commit_gaps.install(
            consumer,
            heads,
            verify=(names.fills, names.cash_flows),
            on_skipped=lambda m: metrics.records_skipped.labels(topic=m.topic).inc(),
        )
        consumer._umh_heads = heads  # the stall watch judges such partitions from there too
        metrics.workarounds.labels(name="commit_gaps").set(1)
        return consumer

    patched: Any = app
    patched._new_producer = producer_that_drains
    patched._new_consumer = consumer_that_rereads

    def raw_topic(name: str) -> Any:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )

    households = raw_topic(names.households)
    fills = raw_topic(names.fills)
    flows = raw_topic(names.cash_flows)
    out_topics = {n: raw_topic(n) for n in (names.orders, names.drift_alerts, names.dead_letters)}
    table = app.Table(
        # bytes keys and values: Faust serialises both "raw", so a key lands in the changelog
        # partition murmur2 picks for the same bytes on the input topics.
        f"{settings.topic_prefix}households",
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        use_partitioner=True,  # writes from the tick path, outside stream iteration
        extra_topic_configs=(
            {"min.insync.replicas": str(min_insync_replicas(rf))} if rf >= 2 else {}
        ),
    )

    # the name `ensure_topics` creates it under, before the worker joins its group
    assert table.changelog_topic.get_topic_name() == changelog_topic(settings)

    def owned() -> set[int]:
        return {
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == names.households
        }

    events = WorkerEvents()
    metrics = Metrics()
    store = TableStore(
        table, owned, settings.partitions, lambda: app.producer, events, metrics=metrics
    )
    # Every output message names the worker that produced it (operators, and the fault tests'
    # takeover measurement, tell a survivor's messages from a dead worker's in-flight ones).
    produced_by = [(WORKER_HEADER, str(app.conf.canonical_url).encode())]
    observed_kinds = {names.orders: "orders", names.drift_alerts: "alert"}

    async def publish(topic: str, key: str | bytes | None, value: bytes) -> Any:
        # Straight through the producer, not Faust's topic buffer: a buffered send is only
        # flushed by the commit timer (~2-3 s of latency per order). Returns once the broker
        # acknowledged it (acks=all): an open rebalance is marked published only then.
        assert topic in out_topics, topic
        sent = await app.producer.send_and_wait(
            topic, key.encode() if isinstance(key, str) else key, value, None, None, produced_by
        )
        kind = observed_kinds.get(topic)
        if kind is not None:
            events.published(kind, value)
        return sent

    # no household is evaluated before the price feed has read every price back
    rebalancer = Rebalancer(
        settings, store, publish, metrics, solve=solve, persist=store.persist, prices_ready=False
    )

    async def to_dead_letters(
        topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, error: str
    ) -> None:
        metrics.dead_letters.inc()
        log.warning(
            "dead letter topic=%s partition=%d offset=%d key=%r error=%s",
            topic,
            partition,
            offset,
            key,
            error,
        )
        dl_key, dl_value = dead_letter(
            topic, partition, offset, key, value, error, datetime.now(UTC)
        )
        # through the rebalancer's publisher, so that agent tests can collect dead letters; the
        # original key bytes as they were. A dead letter that cannot be published is logged:
        # it never stops the stream.
        try:
            await rebalancer.publish(names.dead_letters, dl_key, dl_value)
        except Exception:
            log.exception(
                "could not publish the dead letter of topic=%s partition=%d offset=%d",
                topic,
                partition,
                offset,
            )

    def on_event(topic: str) -> None:
        metrics.events.labels(topic=topic).inc()

    async def on_ticks(ticks: Any) -> int:
        started = await rebalancer.on_ticks(ticks)
        events.ticked(ticks)
        return started

    def on_security(security: Any) -> None:
        rebalancer.on_security(security)
        events.securities_changed()

    async def on_caught_up(ticks: Any) -> int:
        metrics.price_catch_up_seconds.set(feed.catch_up_s or 0.0)
        evaluated = await rebalancer.prices_caught_up(ticks)
        events.ticked(ticks)
        return evaluated

    feed = PriceFeed(settings, on_ticks, on_security, to_dead_letters, on_event, on_caught_up)

    handling: Counter[str] = Counter()  # topic -> events its agent is handling now

    async def guarded(event: Any, handle: Any) -> None:
        message = event.message
        on_event(message.topic)
        handling[message.topic] += 1
        try:
            await handle(message)
            return
        except (ValidationError, UnknownHousehold) as exc:
            error = str(exc)
        except Exception as exc:  # the stream goes on; the message's coordinates are logged
            log.exception(
                "failed topic=%s partition=%d offset=%d key=%r",
                message.topic,
                message.partition,
                message.offset,
                message.key,
            )
            error = f"internal error: {exc!r}"
        finally:
            handling[message.topic] -= 1
        await to_dead_letters(
            message.topic, message.partition, message.offset, message.key, message.value, error
        )

    # Decoding and key checks: streams/worker/inputs.py (keys stay bytes until validated).
    async def handle_snapshot(message: Any) -> None:
        record = inputs.household_message(message.key, message.value)
        if isinstance(record, inputs.Delete):
            await rebalancer.on_delete(record.household_id, message.offset)
            return
        await rebalancer.on_snapshot(record, inputs.snapshot_mark(message.offset, message.value))

    async def handle_fill(message: Any) -> None:
        await rebalancer.on_fill(inputs.fill_message(message.key, message.value))

    async def handle_flow(message: Any) -> None:
        await rebalancer.on_cash_flow(inputs.cash_flow_message(message.key, message.value))

    @app.agent(households, concurrency=1)
    async def households_agent(stream: Any) -> None:
        async for event in stream.events():
            await guarded(event, handle_snapshot)

    @app.agent(fills, concurrency=1)
    async def fills_agent(stream: Any) -> None:
        async for event in stream.events():
            await guarded(event, handle_fill)

    @app.agent(flows, concurrency=1)
    async def cash_flows_agent(stream: Any) -> None:
        async for event in stream.events():
            await guarded(event, handle_flow)

    async def price_feed() -> None:
        rebalancer.start()  # the solver processes start while the prices are read back
        await feed.run()

    async def expire_orders() -> None:
        if not app.rebalancing:
            await rebalancer.sweep()

    changelog = changelog_topic(settings)

    async def report_lag() -> None:
        lag = await feed.lag()
        consumer: Any = app.consumer
        try:
            for tp in app.assignor.assigned_actives():
                if tp.topic == changelog:
                    continue  # read only while recovering: its position then stays behind
                high = consumer.highwater(tp)
                read = consumer._read_offset.get(tp)  # best effort: private maps
                position = read + 1 if read is not None else consumer._committed_offset.get(tp)
                if high is not None:
                    lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - (position or 0))
        except Exception:
            pass
        for topic, behind in lag.items():
            metrics.consumer_lag.labels(topic=topic).set(behind)
        metrics.solve_queue.set(rebalancer.queued + rebalancer.solving)

    stall: StallWatch[Any] = StallWatch()
    # every input is harmless to read again: fills and flows are applied once by id, and a
    # snapshot record at or below the offset its household's state came from is kept out
    # (`SnapshotMark.covers`)
    idempotent_topics = (names.households, names.fills, names.cash_flows)

    def next_to_commit(consumer: Any, tp: Any) -> int | None:
        """The partition's committed offset; without a commit, its first offset (where it was
        sought to its beginning); None when neither is known."""
        committed: int | None = consumer._committed_offset.get(tp)
        if committed is None:
            committed = getattr(consumer, "_umh_heads", {}).get(tp)
        return committed

    async def watch_inputs() -> None:
        """Restart an input partition that has stopped moving with records waiting (stall.py)."""
        if app.rebalancing or rebalancer.moving or not rebalancer.prices_ready:
            stall.clear()
            return
        consumer: Any = app.consumer
        tps = [tp for tp in app.assignor.assigned_actives() if tp.topic in idempotent_topics]
        if not tps:
            return
        try:
            ends = await consumer.highwaters(*tps)
            # Faust's committed offsets: what its agents acknowledged, in order (stall.py)
            committed = {tp: next_to_commit(consumer, tp) for tp in tps}
        except Exception:
            log.debug("input watch skipped", exc_info=True)
            return
        positions = {tp: pos for tp, pos in committed.items() if pos is not None}
        busy = {tp for tp in tps if handling[tp.topic] > 0}
        for tp in stall.observe(positions, ends, time.monotonic(), busy):
            await restart_partition(consumer, tp, positions[tp], ends[tp])

    async def restart_partition(consumer: Any, tp: Any, position: int, end: int) -> None:
        # fetched again from `position`, its next offset to commit: never past a record not yet
        # applied; what is read twice changes nothing (fill_id, flow_id, snapshot offset)
        log.warning(
            "input partition %s/%d stalled at %d with %d records waiting for %.0f s "
            "(fetched=%s paused=%s buffered=%s): resuming it there",
            tp.topic,
            tp.partition,
            position,
            end - position,
            stall.stall_s,
            tp in consumer._get_active_partitions(),
            tp in consumer._paused_partitions,
            tp in consumer._buffered_partitions,
        )
        metrics.input_stalls.labels(topic=tp.topic).inc()
        consumer._buffered_partitions.discard(tp)
        consumer.resume_partitions({tp})
        await consumer.seek(tp, position)

    async def on_revoked(_sender: Any, *args: Any, **kwargs: Any) -> None:
        rebalancer.pause()  # until the recovery of the new assignment completes
        stall.clear()
        store.cache.clear()
        rebalancer.forget(rebalancer.household_ids())
        # every table write made so far into the changelog before the new assignment's
        # recovery reads it (Faust flushed already; a solve may have written since)
        try:
            await app.producer.flush()
        except Exception:
            log.exception("flushing the table writes on revocation failed")

    async def recheck() -> None:
        # An open rebalance recovered from the changelog unpublished may never have reached
        # `orders` (its worker was killed between the write and the ack): publish it, as is.
        try:
            await rebalancer.republish_open(rebalancer.household_ids())
        except Exception:
            log.exception("re-publishing open rebalances after recovery failed")
        # Ticks that arrived while partitions moved found no owner (the price feed is outside
        # the group), so a breach seen by a worker that then died would wait for the next
        # tick of its symbols: evaluate the newly owned households once at the latest prices
        # (each is solved for its own latest event date, whichever worker does it). Before
        # the feed has caught up this is left to `prices_caught_up`.
        if rebalancer.prices_ready:
            try:
                await rebalancer.recheck(rebalancer.household_ids())
            except Exception:
                log.exception("re-check after recovery failed")

    async def track_output_topics() -> None:
        # Faust picks a partition for the table's changelog (use_partitioner) and keyed output
        # synchronously from the producer's metadata cache; on Apache Kafka that cache holds
        # only topics the producer has asked about, so the first write to a topic it has not
        # seen fails ("'NoneType' object is not iterable"). Asking once makes it track them.
        try:
            producer: Any = app.producer
            inner = producer._ensure_producer()
            for name in (table.changelog_topic.get_topic_name(), *out_topics):
                await inner.partitions_for(name)
        except Exception:
            log.exception("could not load producer metadata for the output topics")

    async def on_assigned(_sender: Any, *args: Any, **kwargs: Any) -> None:
        rebalancer.assigned()
        # before this assignment's recovery completes: which generation a completion is for
        tables: Any = app.tables  # Faust's TableManager (its typed interface omits `recovery`)
        recovery_generation.install(tables.recovery)
        metrics.workarounds.labels(name="recovery_generation").set(1)

    @table.on_recover
    async def on_recovered() -> None:
        await track_output_topics()
        store.cache.clear()
        rebalancer.rebuild()
        # A revocation, or the next assignment, may have come since this recovery's
        # assignment (Faust runs the recovery's callbacks after the next rebalance has begun,
        # and ends an interrupted replay as if complete): resuming now would let writes race
        # that rebalance's replay of the changelog, or be made from a half-replayed table, so
        # the next recovery resumes.
        if rebalancer.recovered(superseded=recovery_superseded(app)):
            asyncio.get_running_loop().create_task(recheck())

    async def on_shutdown(_sender: Any, **kwargs: Any) -> None:
        rebalancer.close()

    # Registered by call, not by decorator: Faust's decorators are untyped.
    wiring: Any = app
    wiring.task(price_feed)
    wiring.timer(interval=max(0.2, min(1.0, settings.order_ttl_s / 3)))(expire_orders)
    wiring.timer(interval=5.0)(report_lag)
    wiring.timer(interval=2.0)(watch_inputs)
    wiring.on_partitions_revoked.connect(on_revoked)
    wiring.on_partitions_assigned.connect(on_assigned)
    wiring.on_before_shutdown.connect(on_shutdown)

    umh = UmhApp(
        app,
        settings,
        rebalancer,
        store,
        feed,
        metrics,
        names,
        {"households": households_agent, "fills": fills_agent, "cash-flows": cash_flows_agent},
        events,
    )
    return umh
