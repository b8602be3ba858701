"""Failover on a 3-node Apache Kafka cluster while ticks, fills and cash flows stream.

Two workers share 4 partitions; 200 households; the driver (`driver.py`) runs breach episodes
and an OMS. Then (b) one worker is killed with SIGKILL, or (a) the broker leading the most
partitions of the deployment's topics is. Afterwards:

- every household got exactly one rebalance per breach episode: distinct rebalance_ids equal
  the episodes, numbered 1..K, each published after its episode began and after every fill of
  the previous one was sent (never two open at once); an order_id seen twice is identical;
- the workers' state (last value per key of the `households` table changelog) holds exactly
  the snapshot plus every fill and cash flow sent: cash and quantity per account and symbol;
- loss memory: households that sold LEQ at a loss before the fault buy LALT, never LEQ, after
  it (controls without the loss buy LEQ);
- the survivor takes over: time from the kill to the first order or alert that the survivor
  produced (the `umh-worker` header names the producing worker) for a household the killed
  worker owned; messages the dead worker produced before dying may still arrive after the kill
  and do not count (printed; asserted below TAKEOVER_LIMIT_S). For a broker kill: the first
  output of any worker after the kill.

A breach episode ends only when its rebalance is filled (the driver waits for that before the
next one), so an episode never resolves and re-breaches by itself; identical re-published
rebalances (same rebalance_id, same orders) are allowed, two rebalance_ids for one episode are
not.

A third scenario kills the leading broker during a market-wide move: every tick group's first
episode at once (180 households out of band together), the kill a moment after the move's ticks
are out. A killed broker is started again afterwards (same command line, same data directory)
and the next scenario waits for all three brokers; a killed worker is started again too, and
every household must then be valued with known prices (`missing_prices` empty, the driver's
levels within the noise) through the console API of the restarted worker.

`realized_this_year` (the worker keeps it from fills) must equal, per household without a later
snapshot, the realized gains of its taxable sell trades.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
import urllib.parse
from collections import Counter
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from integration.conftest import Cluster, KafkaCluster

from streams.kafka.topics import partition_for
from streams.worker.state import decode_state

from .driver import Driver

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

PARTITIONS = 4
TICK_EPISODES = 4
DEPOSIT_EPISODES = 3
TAKEOVER_LIMIT_S = 20.0
READ_ALL_S = 180.0  # reading a changelog to its end, on a loaded machine
EPS = 1e-6


def written(hid: str, records: list[Record], epoch_s: float) -> str:
    """A household's changelog records, oldest first: where, when (s since the driver started)
    and what each says (whose state, sequence, open and last rebalance, fills applied, the
    quantity held per symbol)."""
    out = []
    for partition, offset, timestamp, value in records[-8:]:
        state = decode_state(value)
        open_id = state.open_rebalance.result.rebalance_id if state.open_rebalance else None
        last_id = state.last_rebalance.rebalance_id if state.last_rebalance else None
        held: Counter[str] = Counter()
        for account in state.household.accounts:
            for lot in account.lots:
                held[lot.symbol] += lot.quantity
        whose = "" if state.household_id == hid else f" OF {state.household_id}"
        out.append(
            f"p{partition}@{offset} t={timestamp / 1000 - epoch_s:.1f}s{whose}"
            f" seq={state.sequence} open={open_id} last={last_id}"
            f" fills={len(state.applied_fills)}"
            f" held={','.join(f'{s}:{q:.3f}' for s, q in sorted(held.items()))}"
        )
    return " | ".join(out)


def fills_of(d: Driver, hid: str) -> str:
    """The household's rebalances as the OMS saw them: id, when first seen, by which worker,
    and each order with its side, symbol and quantity (what was filled)."""
    seen: dict[str, tuple[float, str | None]] = {}
    for o in d.orders:
        if o.rebalance["household_id"] == hid:
            seen.setdefault(o.rebalance["rebalance_id"], (o.arrival_s, o.worker))
    out = []
    for rb in sorted(d.rebalances_of(hid), key=lambda r: seen[r["rebalance_id"]][0]):
        at, worker = seen[rb["rebalance_id"]]
        orders = ",".join(
            f"{o['side']} {o['symbol']} {o['quantity']:.4f}@{o['account_id'][-3:]}"
            for o in rb["orders"]
        )
        out.append(f"{rb['rebalance_id']} t={at:.1f}s by {(worker or '?')[-5:]}: {orders}")
    return " | ".join(out)


def changelog(prefix: str) -> str:
    return f"{prefix}app-{prefix}households-changelog"


async def metadata(bootstrap: str) -> Any:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return await consumer._client.fetch_all_metadata()
    finally:
        await consumer.stop()


#: A changelog record, for a failure report: partition, offset, timestamp (ms) and value.
Record = tuple[int, int, int, bytes]


async def read_all(
    bootstrap: str, topic: str, history: dict[str, list[Record]] | None = None
) -> dict[str, bytes]:
    """The last value per key of `topic` (the table's state when it is a changelog); every
    record per key also goes into `history` when given. All of it or an AssertionError: a
    partial read would pass older values off as the last ones (a loaded machine, a broker
    just restarted)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    out: dict[str, bytes] = {}
    try:
        md = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(topic, p) for p in sorted(md.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        deadline = time.monotonic() + READ_ALL_S
        while True:
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= end[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
            assert time.monotonic() < deadline, (
                f"{topic} not read to its end in {READ_ALL_S:.0f} s: at {positions} of "
                f"{[end[tp] for tp in tps]}"
            )
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    if r.value is not None:
                        out[r.key.decode()] = r.value
                        if history is not None:
                            history.setdefault(r.key.decode(), []).append(
                                (r.partition, r.offset, r.timestamp, r.value)
                            )
    finally:
        await consumer.stop()
    return out


async def check_replication(bootstrap: str, prefix: str) -> None:
    """RF 3 and min.insync.replicas 2 on every topic of the deployment, changelog included."""
    md = await metadata(bootstrap)
    mine = sorted(t for t in md.topics() if t.startswith(prefix))
    assert changelog(prefix) in mine and f"{prefix}households" in mine, mine
    problems = []
    for t in mine:
        for p, meta in md._partitions[t].items():
            if len(meta.replicas) != 3:
                problems.append(f"{t}[{p}] replicas={meta.replicas}")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in mine]
        for response in await admin.describe_configs(resources):
            for _code, _msg, _type, name, entries in response.resources:
                conf = {e[0]: e[1] for e in entries}
                # Faust's leader-election topic carries no data: broker default (1 here)
                if conf.get("min.insync.replicas") != "2" and "__assignor" not in name:
                    problems.append(f"{name} min.insync.replicas={conf.get('min.insync.replicas')}")
    finally:
        await admin.close()
    assert not problems, problems


def owned_partitions(log: str, topic: str) -> set[int]:
    """Partitions of `topic` in the worker's last assignment (aiokafka's log line)."""
    lines = [ln for ln in log.splitlines() if "Setting newly assigned partitions" in ln]
    if not lines:
        return set()
    return {
        int(p)
        for p in re.findall(
            rf"TopicPartition\(topic='{re.escape(topic)}', partition=(\d+)\)", lines[-1]
        )
    }


def metric_sum(workers: list[Any], pattern: str) -> float:
    """The sum over the running workers' `/metrics` of the samples matching `pattern` (a
    regular expression of one whole line whose group is the value)."""
    total = 0.0
    for w in workers:
        try:
            text = w.get("/metrics").decode()
        except OSError:
            continue
        total += sum(float(v) for v in re.findall(pattern, text, re.M))
    return total


def input_stalls(workers: list[Any]) -> int:
    """Input partitions the running workers restarted after a stall (`umh_input_stalls`)."""
    return int(metric_sum(workers, r"^umh_input_stalls_total\{.*\} (\S+)$"))


async def total_households(workers: list[Any]) -> int:
    return int(metric_sum(workers, r"^umh_households (\S+)$"))


def kill_broker(kafka3: KafkaCluster, node: int) -> list[str]:
    """SIGKILL broker `node`; returns its command line, to start it again."""
    pid = kafka3.pid(node)
    assert pid is not None, f"broker {node} is not running"
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    os.kill(pid, signal.SIGKILL)
    return argv


def restart_broker(kafka3: KafkaCluster, node: int, argv: list[str]) -> None:
    """The killed node again, on its own data directory (it rejoins and catches up)."""
    logs = kafka3.run_dir / f"node-{node}" / "logs"
    with open(logs / "stdout.log", "ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=kafka3.root,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (kafka3.run_dir / f"node-{node}" / "pid").write_text(f"{proc.pid}\n")


async def all_brokers_up(bootstrap: str, timeout_s: float = 90.0) -> None:
    """Three brokers registered and every partition's ISR complete again (after a restart)."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            md = await metadata(bootstrap)
            short = [
                f"{t}[{p}]"
                for t in md.topics()
                for p, meta in md._partitions[t].items()
                if len(meta.isr) < len(meta.replicas)
            ]
            if len(md.brokers()) == 3 and not short:
                return
            last = f"{len(md.brokers())} brokers, under-replicated: {short[:5]}"
        except Exception as exc:
            last = repr(exc)
        await asyncio.sleep(1.0)
    raise AssertionError(f"the cluster did not recover its third broker: {last}")


async def inputs_processed(bootstrap: str, prefix: str, timeout_s: float = 90.0) -> bool:
    """True once the workers' consumer group has committed every input message sent (fills,
    cash flows, snapshots): nothing sent is still waiting to be applied."""
    topics = [f"{prefix}{n}" for n in ("fills", "cash-flows", "households")]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        md = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(t, p) for t in topics for p in md.partitions_for_topic(t) or ()]
        end = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                committed = await admin.list_consumer_group_offsets(f"{prefix}app")
            except Exception:
                committed = {}
            if all(
                tp in committed and committed[tp].offset >= end[tp] for tp in tps if end[tp] > 0
            ):
                return True
            await asyncio.sleep(0.5)
        return False
    finally:
        await admin.close()
        await consumer.stop()


def realized_problems(states: dict[str, bytes], skip: set[str]) -> list[str]:
    """realized_this_year == the realized gains of the taxable sell trades remembered (the
    worker keeps it from fills; the driver's snapshots start the year at zero)."""
    decoded = {hid: decode_state(raw) for hid, raw in states.items()}
    out = []
    for hid, s in decoded.items():
        if hid in skip:
            continue
        taxable = {a.account_id for a in s.household.accounts if a.type == "taxable"}
        want = sum(
            t.realized_gain or 0.0 for t in s.trades if t.side == "sell" and t.account_id in taxable
        )
        year = s.household.realized_this_year
        have = year.short_term_gain + year.long_term_gain
        if abs(have - want) > 0.01:
            out.append(f"{hid}: realized_this_year {have} != taxable sells {want}")
    return out


async def prices_known(worker: Any, hids: list[str], levels: dict[str, float]) -> list[str]:
    """Every household valued at known prices through `worker` (the console forwards)."""
    out = []
    for hid in hids:
        try:
            detail = orjson.loads(worker.get(f"/api/households/{urllib.parse.quote(hid)}"))
        except OSError as exc:
            out.append(f"{hid}: {exc}")
            continue
        if detail["missing_prices"]:
            out.append(f"{hid}: missing prices {detail['missing_prices']}")
        for account in detail["accounts"]:
            for holding in account["holdings"]:
                want = levels.get(holding["symbol"])
                got = holding["price"]
                if want is not None and (got is None or abs(got / want - 1) > 0.02):
                    out.append(f"{hid}: {holding['symbol']} at {got}, the market at {want:.4f}")
    return out


async def scenario(kafka3: KafkaCluster, tmp_path: Any, name: str, fault: str) -> dict[str, Any]:
    started = time.monotonic()
    await all_brokers_up(kafka3.bootstrap)
    prefix = f"f{os.getpid()}{name}."
    c = Cluster(
        kafka3.bootstrap, prefix, tmp_path, {"UMH_PARTITIONS": str(PARTITIONS)}, kind="kafka"
    )
    a, b = c.worker(), c.worker()
    a.start(timeout_s=90)
    b.start(timeout_s=90)
    deadline = time.monotonic() + 60
    while a.health() != 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    await check_replication(kafka3.bootstrap, prefix)
    d = Driver(kafka3.bootstrap, prefix)
    report: dict[str, Any] = {"fault": fault}
    try:
        await d.start()
        await d.load()
        deadline = time.monotonic() + 60
        while await total_households([a, b]) < len(d.all_hids()):
            assert time.monotonic() < deadline, "snapshots not loaded"
            await asyncio.sleep(0.3)
        await d.loss_sales(lambda: inputs_processed(kafka3.bootstrap, prefix))
        await asyncio.sleep(1.5)
        tasks = [asyncio.create_task(d.noise())]
        market_move = fault == "broker-move"  # every group's first episode at the same moment
        for i, symbol in enumerate(d.groups):
            start_s = 0.0 if market_move else 0.3 * i
            tasks.append(
                asyncio.create_task(d.tick_episodes(symbol, TICK_EPISODES, start_s=start_s))
            )
        tasks.append(asyncio.create_task(d.deposit_episodes(DEPOSIT_EPISODES, start_s=1.0)))
        # the first episodes under way; for the market-wide move: its ticks just sent
        # (tick_episodes waits 0.4 s before its first move), the solves in flight
        await asyncio.sleep(0.8 if market_move else 6.0)

        victim_hids: list[str] = []
        survivor = f"http://127.0.0.1:{b.web_port}"
        killed_broker: tuple[int, list[str]] | None = None
        if fault == "worker":
            owned = owned_partitions(a.log_path.read_text(errors="replace"), f"{prefix}households")
            assert owned, "cannot tell which partitions the victim owns"
            victim_hids = [h for h in d.all_hids() if partition_for(h, PARTITIONS) in owned]
            kill_s = d.now()
            assert a.proc is not None
            os.kill(a.proc.pid, signal.SIGKILL)
            report["victim_partitions"] = sorted(owned)
        else:
            md = await metadata(kafka3.bootstrap)
            leaders = Counter(
                md.leader_for_partition(TopicPartition(t, p))
                for t in md.topics()
                if t.startswith(prefix)
                for p in md.partitions_for_topic(t) or ()
            )
            node, led = leaders.most_common(1)[0]
            kill_s = d.now()
            killed_broker = (node, kill_broker(kafka3, node))
            report["killed_broker"] = f"node {node} leading {led} of {sum(leaders.values())}"
        await asyncio.sleep(1.0)
        await d.loss_episode()

        episode_tasks = tasks[1:]
        await asyncio.wait_for(asyncio.gather(*episode_tasks), timeout=150)
        expected = {h: len(d.episodes[h]) for h in d.all_hids()}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            d.settled([h], n) for h, n in expected.items()
        ):
            await asyncio.sleep(0.2)
        await asyncio.sleep(3.0)  # late duplicates
        tasks[0].cancel()
        # every fill and flow sent has been applied and committed (the workers' own offsets):
        # the durable state below is then complete, not a race with the last fills
        report["inputs_committed"] = await inputs_processed(kafka3.bootstrap, prefix)
        # prices are state: the killed worker, started again, values what it takes over at the
        # prices published before it started (no tick moves now: noise stopped)
        if fault == "worker":
            a.start(timeout_s=90)
            deadline = time.monotonic() + 60
            price_problems = await prices_known(a, d.all_hids(), d.level)
            while price_problems and time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                price_problems = await prices_known(a, d.all_hids(), d.level)
            report["prices_after_restart"] = "known" if not price_problems else price_problems[:3]
    finally:
        await d.stop()
        # the worker's guard against input partitions that stop (streams/worker/stall.py)
        report["input_stalls"] = input_stalls(c.workers)
        # snapshot records Kafka delivered twice, kept out by the worker
        report["snapshots_read_again"] = int(
            metric_sum(c.workers, r"^umh_snapshots_read_again_total (\S+)$")
        )
        for w in c.workers:
            w.stop()
        if killed_broker is not None:
            restart_broker(kafka3, *killed_broker)
    # the durable state: what the changelog holds once the workers have stopped (a stopping
    # worker hands its last table writes to Kafka; a restart recovers exactly this)
    history: dict[str, list[Record]] = {}
    read_s = time.monotonic()
    states = await read_all(kafka3.bootstrap, changelog(prefix), history)
    report["changelog_read"] = (
        f"{sum(map(len, history.values()))} records in {time.monotonic() - read_s:.1f} s"
    )

    # ---- one rebalance per episode, never two open at once, duplicates identical
    problems: list[str] = [f"conflicting duplicate: {x}" for x in d.conflicts]
    for hid, episodes in d.episodes.items():
        rbs = sorted(d.rebalances_of(hid), key=lambda rb: int(rb["rebalance_id"].rsplit(":")[-1]))
        seqs = [int(rb["rebalance_id"].rsplit(":")[-1]) for rb in rbs]
        if seqs != list(range(1, len(episodes) + 1)):
            ids = [rb["rebalance_id"] for rb in rbs]
            problems.append(
                f"{hid}: {len(ids)} rebalances {ids} for {len(episodes)} episodes"
                f" (its messages: {' '.join(d.sent_at[hid])})"
            )
            continue
        first_seen = {}
        for o in d.orders:
            first_seen.setdefault(o.rebalance["rebalance_id"], o.arrival_s)
        for k, rb in enumerate(rbs):
            rid = rb["rebalance_id"]
            if first_seen[rid] < episodes[k]:
                problems.append(f"{rid} published before its episode began")
            if k and first_seen[rid] < d.fill_sent_s[rbs[k - 1]["rebalance_id"]] - 0.5:
                problems.append(f"{rid} published while {rbs[k - 1]['rebalance_id']} was open")
    report["rebalances"] = len(d.by_rebalance)
    report["order_messages"] = len(d.orders)
    report["duplicate_messages"] = len(d.orders) - len(d.by_rebalance)
    report["driver_send_retries"] = d.send_retries

    # ---- holdings: the worker's state == snapshot + fills + flows sent
    wrong: list[str] = []
    for hid, accounts in d.book.accounts.items():
        if hid not in states:
            problems.append(f"{hid}: not in the changelog")
            continue
        before = len(problems)
        state = decode_state(states[hid])
        got = {a.account_id: a for a in state.household.accounts}
        for account_id, want in accounts.items():
            acc = got[account_id]
            have: Counter[str] = Counter()
            for lot in acc.lots:
                have[lot.symbol] += lot.quantity
            if abs(acc.cash - want["cash"]) > EPS * max(1.0, abs(want["cash"])):
                problems.append(f"{account_id}: cash {acc.cash} != {want['cash']}")
            for symbol in set(have) | {s for s in want if s != "cash"}:
                if abs(have[symbol] - want.get(symbol, 0.0)) > EPS * 100:
                    problems.append(f"{account_id}: {symbol} {have[symbol]} != {want.get(symbol)}")
        if len(problems) > before:
            wrong.append(hid)
    # who wrote what when: a wrong state is explained by its changelog records and messages
    # (first in the report: the problems shown are cut at 40)
    explained = []
    for hid in wrong[:4]:
        explained.append(f"{hid} changelog: {written(hid, history[hid], d.clock0)}")
        explained.append(f"{hid} messages: {' '.join(d.sent_at[hid])}")
        explained.append(f"{hid} fills: {fills_of(d, hid)}")
    problems[:0] = explained

    # ---- realized_this_year kept (when the worker keeps it)
    problems += realized_problems(states, set(d.loss_hids))
    if fault == "worker" and report["prices_after_restart"] != "known":
        problems += [f"after restart: {p}" for p in report["prices_after_restart"]]

    # ---- loss memory across the failover
    for hid in d.loss_hids + d.control_hids:
        buys = {
            o["symbol"] for rb in d.rebalances_of(hid) for o in rb["orders"] if o["side"] == "buy"
        }
        if hid in d.loss_hids and ("LEQ" in buys or "LALT" not in buys):
            problems.append(f"{hid} (loss sale of LEQ) bought {sorted(buys)}")
        if hid in d.control_hids and "LEQ" not in buys:
            problems.append(f"control {hid} bought {sorted(buys)}: the check proves nothing")

    # ---- takeover
    after = [
        (o.arrival_s, o.rebalance["household_id"], o.worker)
        for o in d.orders
        if o.arrival_s > kill_s
    ]
    after += [(al.arrival_s, al.alert["household_id"], al.worker) for al in d.alerts]
    after = [x for x in after if x[0] > kill_s]
    if fault == "worker":
        victims = set(victim_hids)
        firsts = sorted(t for t, h, w in after if h in victims and w == survivor)
        stale = sorted(t for t, h, w in after if h in victims and w != survivor)
        report["victim_households"] = len(victims)
        report["takeover_s"] = round(firsts[0] - kill_s, 2) if firsts else None
        # the dead worker's last messages, fetched after the kill: not a takeover
        report["dead_worker_messages_after_kill"] = len(stale)
    else:
        firsts = sorted(t for t, _h, _w in after)
        report["first_output_after_kill_s"] = round(firsts[0] - kill_s, 2) if firsts else None
        report["takeover_s"] = report["first_output_after_kill_s"]
    report["episodes"] = sum(len(e) for e in d.episodes.values())
    report["runtime_s"] = round(time.monotonic() - started, 1)
    print(f"\nFAULT REPORT {name}: {report}")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])
    assert report["takeover_s"] is not None and report["takeover_s"] < TAKEOVER_LIMIT_S, report
    return report


async def test_worker_killed(kafka3: KafkaCluster, tmp_path: Any) -> None:
    await scenario(kafka3, tmp_path, "w", "worker")


async def test_broker_killed(kafka3: KafkaCluster, tmp_path: Any) -> None:
    await scenario(kafka3, tmp_path, "b", "broker")


async def test_broker_killed_during_a_market_wide_move(kafka3: KafkaCluster, tmp_path: Any) -> None:
    await scenario(kafka3, tmp_path, "m", "broker-move")
