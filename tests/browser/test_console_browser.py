"""The operations console in headless Chromium: live list, household detail, what-if.

A price tick pushes households out of band while the page is open: they appear in the list
without a reload (the page's own marker survives), largest drift first; clicking the family shows
its accounts, its drift against the bands and its open rebalance with every order's reason.
Screenshots of both views go to docs/screenshots/.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from integration.conftest import Cluster

from .conftest import produce
from .households import AFTER, book

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
OUT_OF_BAND = ["hh-smith", "hh-garcia", "hh-chen", "hh-okafor"]  # largest drift first


DETAIL_FACTS = """
const root = document.querySelector(`#household [data-household="${arguments[0]}"]`);
if (!root) return null;
const rows = [...root.querySelectorAll(".rebalance tr[data-order]")];
return {
  orders: rows.map((tr) => ({side: tr.cells[0].textContent, reason: tr.cells[6].textContent,
                             lots: tr.cells[7].textContent})),
  out: [...root.querySelectorAll("table.drift tr.out")].map((tr) => tr.dataset.class),
  accounts: [...root.querySelectorAll(".account")].map((a) => a.textContent),
};
"""


def wait_for(check: Any, timeout_s: float = 30.0, what: str = "the page") -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # stale elements while the page re-renders
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: last={last!r}")


def listed(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#households tbody tr")
    return [r.get_attribute("data-household") for r in rows]


def api(c: Cluster, path: str) -> Any:
    port = c.workers[0].web_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return orjson.loads(response.read())


def test_console_lists_live_and_shows_a_household(driver: Any, console: Cluster) -> None:
    from selenium.webdriver.common.by import By

    households = book()
    produce(console, "households", [(h["household_id"], h) for h in households])
    wait_for(
        lambda: len(api(console, "/api/households")["households"]) == len(households),
        60,
        "the worker to load the households",
    )

    driver.get(f"http://127.0.0.1:{console.workers[0].web_port}/")
    wait_for(
        lambda: (
            "live" in driver.find_element(By.ID, "live").get_attribute("class")
            and "on" in driver.find_element(By.ID, "live").get_attribute("class")
        ),
        20,
        "the event stream",
    )
    assert listed(driver) == []
    assert driver.find_element(By.ID, "empty").is_displayed()
    driver.execute_script("window.umhMarker = 42;")  # gone if the page reloads

    produce(
        console,
        "prices",
        [
            (s, {"schema": "price/v1", "symbol": s, "price": p, "ts": "2026-11-25T15:30:00Z"})
            for s, p in AFTER.items()
        ],
    )

    wait_for(lambda: listed(driver) == OUT_OF_BAND, 40, "the out-of-band households")
    assert driver.execute_script("return window.umhMarker;") == 42, "the page reloaded"
    # the open rebalances show up too, as they happen
    wait_for(
        lambda: all(
            r.text.strip() not in ("", "—")
            for r in driver.find_elements(By.CSS_SELECTOR, "#households tbody tr td:nth-child(4)")
        ),
        30,
        "the open rebalances",
    )
    wait_for(
        lambda: len(driver.find_elements(By.CSS_SELECTOR, "#events li")) >= 4,
        20,
        "alerts and orders in the event log",
    )
    first = driver.find_element(By.CSS_SELECTOR, "#households tbody tr td:nth-child(2)").text
    assert first.endswith("%") and float(first.rstrip("%")) > 5.0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / "console-list.png"))

    driver.find_element(By.CSS_SELECTOR, '#households tr[data-household="hh-smith"]').click()
    # read the detail in one script: live refreshes re-render it between Selenium calls
    facts = wait_for(
        lambda: (f := driver.execute_script(DETAIL_FACTS, "hh-smith")) and f["orders"] and f,
        20,
        "the detail with its open rebalance",
    )
    reasons = {o["reason"] for o in facts["orders"]}
    assert {"rebalance", "tax loss harvest"} <= reasons
    assert all(o["reason"] for o in facts["orders"])
    sells = [o for o in facts["orders"] if o["side"] == "sell"]
    assert sells and all(o["lots"] != "—" for o in sells)
    assert set(facts["out"]) >= {"us_equity", "fixed_income"}
    assert len(facts["accounts"]) == 3
    assert "$" in facts["accounts"][0] and "," in facts["accounts"][0]  # money with separators
    assert driver.execute_script("return window.umhMarker;") == 42
    height = driver.execute_script("return document.documentElement.scrollHeight;")
    driver.set_window_size(1440, min(int(height) + 140, 4000))  # the whole detail in one shot
    time.sleep(0.3)
    driver.save_screenshot(str(SCREENSHOTS / "console-household.png"))

    # the what-if panel solves the household's snapshot as `umh solve` would
    driver.find_element(By.ID, "whatif-solve").click()
    result = wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, "#whatif-result .rebalance"),
        20,
        "the what-if result",
    )
    assert "rebalanced" in result.text or "no_action" in result.text
