"""Browser fixtures: headless Chromium (Debian's `chromium` + `chromium-driver`) under Selenium,
and one `umh worker` on the embedded broker, reusing the integration fixtures' `Cluster`.

Nothing here downloads a browser or a driver: Selenium is pointed at `/usr/bin/chromedriver`.
Without Chromium the tests skip locally and fail in CI (`CI` set), with the reason.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from integration.conftest import Cluster, _counter

from streams.kafka.broker import embedded_broker

CHROMEDRIVER = Path(os.environ.get("UMH_CHROMEDRIVER", "/usr/bin/chromedriver"))
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
INSTALL_HINT = "apt-get install -y chromium chromium-driver, and pip install 'selenium>=4.20'"


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return f"selenium is not installed ({INSTALL_HINT})"
    if not CHROMEDRIVER.is_file():
        return f"no chromedriver at {CHROMEDRIVER} ({INSTALL_HINT})"
    if _chromium() is None:
        return f"no Chromium at {' or '.join(CHROMIUM_CANDIDATES)} ({INSTALL_HINT})"
    return None


def _chromium() -> str | None:
    configured = os.environ.get("UMH_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    return next((c for c in CHROMIUM_CANDIDATES if Path(c).is_file()), None)


@pytest.fixture(scope="session")
def chromium_ready() -> str:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need headless Chromium in CI: {reason}", pytrace=False)
        pytest.skip(f"browser tests: {reason}")
    binary = _chromium()
    assert binary is not None
    return binary


@pytest.fixture
def driver(chromium_ready: str) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="umh-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_ready
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1440,900",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with embedded_broker(log_path=log) as address:
        yield address


@pytest.fixture
def console(embedded: str, tmp_path: Path) -> Iterator[Cluster]:
    """One worker with its console, on its own topics."""
    c = Cluster(embedded, f"b{os.getpid()}x{next(_counter)}.", tmp_path, {})
    c.worker().start(timeout_s=90)
    try:
        yield c
    finally:
        for w in c.workers:
            w.stop()


def produce(c: Cluster, topic: str, messages: list[tuple[str, Any]]) -> None:
    """Send messages with one producer, back to back (ticks land in one coalescing window)."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=c.bootstrap, linger_ms=5)
        await producer.start()
        try:
            futures = [
                await producer.send(c.topic(topic), orjson.dumps(v), key=k.encode())
                for k, v in messages
            ]
            await producer.flush()
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(send())
