"""The console's HTTP API on two workers sharing the partitions (contract section 6).

Worker A runs without a token, worker B with `UMH_API_TOKEN`. Eight households hold one equity
each; price ticks push four of them out of band by different amounts, so the list has an order.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from .conftest import REPO, Broker, Cluster, Worker, _counter, price, snapshot

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"
#: household -> the price its equity ticks to; drift of a 60/40 household = 60p/(60p+4000) - 0.6
TICKS = {
    "c-0": 170.0,
    "c-1": 110.0,
    "c-2": 150.0,
    "c-3": 100.0,
    "c-4": 135.0,
    "c-5": 104.0,
    "c-6": 126.0,
    "c-7": 95.0,
}
OUT_OF_BAND = ["c-0", "c-2", "c-4", "c-6"]  # largest drift first


def drift(p: float) -> float:
    return 60 * p / (60 * p + 4000) - 0.6


def request(
    worker: Worker,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{worker.web_port}{path}", data=body, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def get_json(worker: Worker, path: str) -> tuple[int, Any]:
    status, data = request(worker, path)
    return status, orjson.loads(data)


def wait_until(check: Any, timeout_s: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}: last={last!r}")


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["household_id"] for r in rows if r["household_id"].startswith("c-")]


@pytest.fixture(scope="module")
def pair(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(
        broker.bootstrap,
        f"cons{os.getpid()}x{next(_counter)}.",
        tmp_path_factory.mktemp("pair"),
        {},
        kind=broker.kind,
    )
    a = c.worker()
    b = c.worker(UMH_API_TOKEN=TOKEN)
    try:
        a.start(timeout_s=90)
        b.start(timeout_s=90)

        async def load() -> None:
            for i, hid in enumerate(TICKS):
                await c.send("households", hid, snapshot(hid, eq=f"EQ{i}", fi="BND"))

        asyncio.run(load())

        def all_loaded() -> bool:
            local = [get_json(w, "/api/households?local=true")[1]["households"] for w in (a, b)]
            return (
                a.health() == 200
                and b.health() == 200
                and sorted(ids(local[0] + local[1])) == sorted(TICKS)
                and bool(ids(local[0]))
                and bool(ids(local[1]))
            )

        wait_until(all_loaded, 90, "both workers to own households")

        async def tick() -> None:
            for i, (_hid, p) in enumerate(TICKS.items()):
                await c.send("prices", f"EQ{i}", price(f"EQ{i}", p))

        asyncio.run(tick())

        def ticked() -> bool:
            # Every tick applied on every worker, the in-band ones too: each worker's price feed
            # reads the prices partitions independently, so the last tick sent (c-7, in band)
            # can still be unseen when the four out-of-band ones already show (it was: 0.0
            # where 0.0124 was due). Waiting on the drift of each row says when all are in.
            for w in (a, b):
                rows = get_json(w, "/api/households")[1]["households"]
                by_id = {r["household_id"]: r for r in rows}
                for hid, p in TICKS.items():
                    row = by_id.get(hid)
                    if row is None or abs(row["max_abs_drift"] - abs(drift(p))) > 1e-6:
                        return False
            rows = get_json(a, "/api/households?out_of_band=true")[1]["households"]
            return ids(rows) == OUT_OF_BAND and all(
                r["open_rebalance_id"] for r in rows if r["household_id"].startswith("c-")
            )

        wait_until(ticked, 60, "every tick applied, four households out of band")
        yield c
    finally:
        for w in c.workers:
            w.stop()


def owner_of(c: Cluster, household_id: str) -> tuple[Worker, Worker]:
    """(owner, other) of a household, from each worker's own listing."""
    a, b = c.workers
    local = ids(get_json(a, "/api/households?local=true")[1]["households"])
    return (a, b) if household_id in local else (b, a)


# --------------------------------------------------------------------------- list


def test_list_is_sorted_filtered_and_limited_on_every_worker(pair: Cluster) -> None:
    for worker in pair.workers:
        status, body = get_json(worker, "/api/households")
        assert status == 200
        rows = body["households"]
        assert "unavailable" not in body
        assert sorted(ids(rows)) == sorted(TICKS)  # every worker lists ALL households
        drifts = [r["max_abs_drift"] for r in rows]
        assert drifts == sorted(drifts, reverse=True)
        by_id = {r["household_id"]: r for r in rows}
        for hid, p in TICKS.items():
            assert by_id[hid]["max_abs_drift"] == pytest.approx(abs(drift(p)), abs=1e-6)
            assert set(by_id[hid]) == {
                "household_id",
                "max_abs_drift",
                "out_of_band",
                "open_rebalance_id",
            }
        assert sorted(by_id["c-0"]["out_of_band"]) == ["fixed_income", "us_equity"]
        assert by_id["c-1"]["out_of_band"] == []
        assert by_id["c-1"]["open_rebalance_id"] is None
        assert by_id["c-0"]["open_rebalance_id"].startswith("c-0:")

        status, body = get_json(worker, "/api/households?out_of_band=true")
        assert status == 200 and ids(body["households"]) == OUT_OF_BAND
        status, body = get_json(worker, "/api/households?out_of_band=true&limit=2")
        assert status == 200 and ids(body["households"]) == OUT_OF_BAND[:2]
        status, body = get_json(worker, "/api/households?limit=nope")
        assert status == 400 and body["error"]


def test_each_worker_answers_locally_for_what_it_owns(pair: Cluster) -> None:
    a, b = pair.workers
    mine = ids(get_json(a, "/api/households?local=true")[1]["households"])
    theirs = ids(get_json(b, "/api/households?local=true")[1]["households"])
    assert mine and theirs and not set(mine) & set(theirs)
    assert sorted(mine + theirs) == sorted(TICKS)


# --------------------------------------------------------------------------- detail


def test_detail_on_the_owner_and_forwarded_by_the_other_worker(pair: Cluster) -> None:
    for hid in ("c-0", "c-1", "c-2"):
        owner, other = owner_of(pair, hid)
        status, direct = get_json(owner, f"/api/households/{hid}")
        assert status == 200
        status, forwarded = get_json(other, f"/api/households/{hid}")
        assert status == 200
        assert forwarded == direct
        assert direct["served_by"] == f"http://127.0.0.1:{owner.web_port}"
        for key in (
            "household_id",
            "as_of",
            "mode",
            "value",
            "weights",
            "drift",
            "tolerance",
            "out_of_band",
            "accounts",
            "open_rebalance",
            "last_rebalance",
        ):
            assert key in direct, key
        p = TICKS[hid]
        assert direct["household_id"] == hid
        assert direct["mode"] == "rebalance"
        assert direct["value"] == pytest.approx(60 * p + 4000)
        assert direct["drift"]["us_equity"] == pytest.approx(drift(p), abs=1e-6)
        assert direct["weights"]["fixed_income"] == pytest.approx(4000 / (60 * p + 4000), abs=1e-6)
        assert direct["tolerance"]["us_equity"] == pytest.approx(0.05)
        assert [a["account_id"] for a in direct["accounts"]] == [f"{hid}-IRA", f"{hid}-TAX"]
        ira = direct["accounts"][0]
        assert ira["value"] == pytest.approx(60 * p + 4000)
        assert ira["by_class"]["us_equity"] == pytest.approx(60 * p)
        assert direct["last_rebalance"] is None
    out = get_json(pair.workers[0], "/api/households/c-0")[1]
    assert sorted(out["out_of_band"]) == ["fixed_income", "us_equity"]
    opened = out["open_rebalance"]
    assert opened["schema"] == "rebalance/v1" and opened["status"] == "rebalanced"
    assert opened["orders"] and all(o["reason"] == "rebalance" for o in opened["orders"])
    sells = [o for o in opened["orders"] if o["side"] == "sell"]
    assert sells and all(o["lots"] for o in sells)
    assert get_json(pair.workers[1], "/api/households/c-1")[1]["open_rebalance"] is None


def test_unknown_household_is_404_on_every_worker(pair: Cluster) -> None:
    for worker in pair.workers:
        for hid in ("nobody", "c-99", "with space"):
            status, body = get_json(worker, f"/api/households/{urllib.parse.quote(hid)}")
            assert status == 404, (hid, body)
            assert "error" in body


# --------------------------------------------------------------------------- solve


def cli_solve(raw: bytes) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "solve", "-"],
        input=raw,
        cwd=REPO,
        capture_output=True,
        check=False,
        timeout=60,
    )
    return done.returncode, orjson.loads(done.stdout)


def without_timing(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "solve_ms"}


def test_solve_answers_what_umh_solve_prints(pair: Cluster) -> None:
    a = pair.workers[0]
    raw = snapshot("what-if", eq="VTI", fi="BND")
    raw["securities"]["VTI"]["price"] = 150.0
    data = orjson.dumps(raw)
    status, body = request(
        a, "/api/solve", method="POST", body=data, headers={"Content-Type": "application/json"}
    )
    assert status == 200
    assert body.endswith(b"\n") and body.count(b"\n") == 1
    answer = orjson.loads(body)
    code, printed = cli_solve(data)
    assert code == 0
    assert answer["status"] == "rebalanced" and answer["orders"]
    assert without_timing(answer) == without_timing(printed)
    # a what-if publishes nothing: the household is not known to the stream
    assert get_json(a, "/api/households/what-if")[0] == 404


def test_solve_refuses_bad_input_in_contract_terms(pair: Cluster) -> None:
    a = pair.workers[0]
    status, body = request(a, "/api/solve", method="POST", body=b"{not json")
    assert status == 400
    result = orjson.loads(body)
    assert result["schema"] == "rebalance/v1" and result["status"] == "invalid_input"
    assert result["errors"] and result["orders"] == []
    assert without_timing(result) == without_timing(cli_solve(b"{not json")[1])

    bad = snapshot("bad-one")
    del bad["target"]
    bad["accounts"][0]["lots"][0]["quantity"] = -3
    status, body = request(a, "/api/solve", method="POST", body=orjson.dumps(bad))
    assert status == 422
    result = orjson.loads(body)
    assert result["status"] == "invalid_input" and result["household_id"] == "bad-one"
    paths = {e["path"] for e in result["errors"]}
    assert "target" in paths and "accounts[0].lots[0].quantity" in paths
    assert without_timing(result) == without_timing(cli_solve(orjson.dumps(bad))[1])

    for payload in (b"", b"[]", b"null", json.dumps({"household_id": 3}).encode()):
        status, body = request(a, "/api/solve", method="POST", body=payload)
        assert status in (400, 422), payload
        assert orjson.loads(body)["status"] == "invalid_input"

    status, body = request(a, "/api/solve", method="POST", body=b" " * (1024 * 1024 + 10))
    assert status == 413 and orjson.loads(body)["error"]

    status, _ = request(a, "/api/solve")
    assert status == 405


def test_solve_needs_the_token_when_one_is_set(pair: Cluster) -> None:
    b = pair.workers[1]  # started with UMH_API_TOKEN
    data = orjson.dumps(snapshot("tok"))
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ):
        status, body = request(b, "/api/solve", method="POST", body=data, headers=headers)
        assert status == 401, headers
        assert orjson.loads(body)["error"]
    status, body = request(
        b, "/api/solve", method="POST", body=data, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert status == 200 and orjson.loads(body)["status"] == "no_action"


# --------------------------------------------------------------------------- monitoring, page


def test_healthz_metrics_and_the_page(pair: Cluster) -> None:
    for worker in pair.workers:
        status, body = get_json(worker, "/healthz")
        assert status == 200 and body["status"] == "ok"
        assert body["app_id"] == worker.env["UMH_APP_ID"]  # which deployment answered
        status, data = request(worker, "/metrics")
        assert status == 200 and b"umh_households" in data
        status, page = request(worker, "/")
        assert status == 200 and b"/console/app.js" in page
        for name in ("app.js", "style.css"):
            assert request(worker, f"/console/{name}")[0] == 200
        assert request(worker, "/console/../app.py")[0] == 404


# --------------------------------------------------------------------------- live events


async def test_events_stream_alerts_orders_and_drift_as_they_happen(pair: Cluster) -> None:
    a = pair.workers[0]
    candidates = [f"ev-{i}" for i in range(10)]
    for hid in candidates:  # in band until their symbol ticks
        await pair.send("households", hid, snapshot(hid, eq="EVQ", fi="BND"))

    def served_by_a() -> list[str]:
        mine = []
        for hid in candidates:
            status, body = get_json(a, f"/api/households/{hid}")
            if status != 200:
                return []
            if body["served_by"] == f"http://127.0.0.1:{a.web_port}":
                mine.append(hid)
        return mine

    mine = await asyncio.to_thread(wait_until, served_by_a, 30, "the new households")
    seen: dict[str, list[dict[str, Any]]] = {}

    def has(kind: str, hid: str) -> bool:
        return any(x["household_id"] == hid for x in seen.get(kind, []))

    def moved(hid: str) -> bool:
        return any(
            r["household_id"] == hid and r["out_of_band"]
            for x in seen.get("households", [])
            for r in x["households"]
        )

    timeout = aiohttp.ClientTimeout(total=45, sock_read=25)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"http://127.0.0.1:{a.web_port}/api/events") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        event = None
        deadline = time.monotonic() + 30
        async for line in response.content:
            text = line.decode().rstrip("\n")
            if text.startswith("event: "):
                event = text[7:]
            elif text.startswith("data: ") and event:
                seen.setdefault(event, []).append(orjson.loads(text[6:]))
                if event == "hello":
                    await pair.send("prices", "EVQ", price("EVQ", 160.0))
            ticked = any("EVQ" in x["symbols"] for x in seen.get("prices", []))
            if ticked and all(has("alert", h) and has("orders", h) and moved(h) for h in mine):
                break
            assert time.monotonic() < deadline, {k: len(v) for k, v in seen.items()}
    assert seen["hello"][0]["worker"] == f"http://127.0.0.1:{a.web_port}"
    alert = next(x for x in seen["alert"] if x["household_id"] == mine[0])
    assert alert["schema"] == "drift_alert/v1" and alert["action"] == "rebalance_submitted"
    orders = next(x for x in seen["orders"] if x["household_id"] == mine[0])
    assert orders["schema"] == "rebalance/v1" and orders["orders"]
    # only what worker A owns comes through A's stream
    assert {x["household_id"] for x in seen["orders"]} <= set(mine) | set(TICKS)


def test_a_worker_whose_web_port_is_taken_comes_up_on_another(
    broker: Broker, tmp_path: Any
) -> None:
    """The fault tests run beside the suite with servers of their own: a port picked free may
    be bound by another process before the worker binds it. The worker exits, is started on
    another port, and the server on its first port is never taken for it."""
    c = Cluster(broker.bootstrap, f"port{os.getpid()}x{next(_counter)}.", tmp_path, {})
    w = c.worker()
    taken = w.web_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()  # accepts, never answers
        try:
            w.start(timeout_s=90)
            assert w.web_port != taken
            status, body = get_json(w, "/healthz")
            assert status == 200 and body["app_id"] == w.env["UMH_APP_ID"]
        finally:
            w.stop()
