"""The operations console over HTTP (contract section 6): its page, its JSON API, its live events.

Any worker answers for any household:
- `GET /api/households/{id}`: the worker that owns the key answers from its table; any other
  worker asks Faust's partition assignor where the key lives (`app.router.key_store`: the same
  murmur2 placement as the table's changelog, mapped to the owner's canonical URL from the
  assignment metadata every member shares) and forwards the request there, once: a forwarded
  request carries `X-Umh-Forwarded` and is never forwarded again (no ping-pong while partitions
  move; it answers 503 and the caller retries).
- `GET /api/households`: the worker answers for what it owns and asks every other member of the
  assignment (`assignor.tables_metadata()`: url -> partitions) for theirs (`?local=true`), then
  merges, sorts and cuts. A member that does not answer in time is named in `unavailable`.
- `GET /api/events`: server-sent events of this worker (see `console_live`).
- `POST /api/solve`: `umh solve` over HTTP, off the event loop, publishing nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson
from yarl import URL

from schemas import ValidationError, loads, result_to_json
from solver.documents import invalid_result, solve_raw
from streams.console.live import KEEPALIVE_S, ConsoleFeed, sse
from streams.console.view import household_detail, select, summary_from_json
from streams.kafka.topics import partition_for
from streams.worker.state import HouseholdState

if TYPE_CHECKING:
    from streams.worker.app import UmhApp

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
#: A household/v1 body above this is refused with 413 (aiohttp's own default request limit).
MAX_SOLVE_BODY = 1024 * 1024
#: What-ifs waiting for the solver thread beyond this are refused with 429.
MAX_PENDING_SOLVES = 8
SOLVE_TIME_LIMIT_S = 2.0
#: How long a worker waits for another worker's answer (forwarding and gathering).
PEER_TIMEOUT_S = 3.0
FORWARDED = "X-Umh-Forwarded"
JSON = "application/json"


def _json(web: Any, body: Any, status: int = 200) -> Any:
    return web.bytes(orjson.dumps(body), content_type=JSON, status=status)


def _error(web: Any, status: int, message: str) -> Any:
    return _json(web, {"error": message}, status)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _ident(url: URL | str) -> tuple[str, int]:
    u = URL(str(url))
    return (u.host or "", int(u.port or 80))


class Console:
    """The console's routes on one worker; `register` wires them into the Faust web server."""

    def __init__(self, umh: UmhApp) -> None:
        self.umh = umh
        self.app: Any = umh.app
        self.self_url = str(self.app.conf.canonical_url).rstrip("/")
        self.table_name = f"{umh.settings.topic_prefix}households"
        rebalancer = umh.rebalancer
        self.feed = ConsoleFeed(umh.store, rebalancer.securities, rebalancer.prices, self.self_url)
        self._executor: ThreadPoolExecutor | None = None
        self._pending = 0

    # ------------------------------------------------------------------ hooks into the worker

    def attach(self) -> None:
        """Hear of every state write, tick batch, security update and published message."""
        self.umh.events.subscribe(self.feed)

    def close(self) -> None:
        self.feed.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # ------------------------------------------------------------------ ownership

    def owns(self, household_id: str) -> bool:
        return partition_for(household_id, self.umh.settings.partitions) in self.umh.store.owned()

    def owner_url(self, household_id: str) -> str | None:
        try:
            return str(self.app.router.key_store(self.table_name, household_id.encode()))
        except (KeyError, AttributeError):  # no assignment yet, or the partition is moving
            return None

    def peers(self) -> list[str]:
        """Canonical URLs of the other members that own table partitions now."""
        try:
            urls = list(self.app.assignor.tables_metadata())
        except Exception:
            return []
        own = _ident(self.self_url)
        return sorted({str(u).rstrip("/") for u in urls if _ident(u) != own})

    async def ask(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)
        async with self.app.http_client.get(
            url, timeout=timeout, headers={FORWARDED: "1", **(headers or {})}
        ) as r:
            return r.status, await r.read()

    # ------------------------------------------------------------------ the API

    async def households(self, web: Any, request: Any) -> Any:
        query = request.query
        out_of_band = _truthy(query.get("out_of_band"))
        limit: int | None = None
        if query.get("limit"):
            try:
                limit = int(query["limit"])
            except ValueError:
                limit = -1
            if limit < 0:
                return _error(web, 400, "limit must be a non-negative integer")
        rows = self.feed.listing(out_of_band=out_of_band, limit=limit)
        if _truthy(query.get("local")) or request.headers.get(FORWARDED):
            return _json(web, {"households": [r.to_json() for r in rows]})
        params = f"local=true&out_of_band={'true' if out_of_band else 'false'}"
        if limit is not None:
            params += f"&limit={limit}"
        peers = self.peers()
        answers = await asyncio.gather(
            *(self.ask(f"{peer}/api/households?{params}") for peer in peers), return_exceptions=True
        )
        unavailable: list[str] = []
        merged = {r.household_id: r for r in rows}
        for peer, answer in zip(peers, answers, strict=True):
            if isinstance(answer, BaseException) or answer[0] != 200:
                log.warning(
                    "console: worker %s did not list its households: %s",
                    peer,
                    answer if isinstance(answer, BaseException) else answer[0],
                )
                unavailable.append(peer)
                continue
            for raw in orjson.loads(answer[1]).get("households", ()):
                summary = summary_from_json(raw)
                merged.setdefault(summary.household_id, summary)
        body: dict[str, Any] = {
            "households": [
                r.to_json() for r in select(merged.values(), out_of_band=out_of_band, limit=limit)
            ]
        }
        if unavailable:
            body["unavailable"] = unavailable
        return _json(web, body)

    def detail(self, state: HouseholdState) -> dict[str, Any]:
        rebalancer = self.umh.rebalancer
        body = household_detail(state, rebalancer.securities, rebalancer.prices)
        body["served_by"] = self.self_url
        return body

    async def household(self, web: Any, request: Any, household_id: str) -> Any:
        if self.owns(household_id):
            state = self.umh.rebalancer.state(household_id)
            if state is None:
                return _error(web, 404, f"unknown household {household_id!r}")
            return _json(web, self.detail(state))
        if request.headers.get(FORWARDED):
            return _error(web, 503, f"household {household_id!r} is moving between workers; retry")
        owner = self.owner_url(household_id)
        if owner is None or _ident(owner) == _ident(self.self_url):
            return _error(web, 503, "partition assignment in progress; retry")
        url = f"{owner.rstrip('/')}/api/households/{quote(household_id, safe='')}"
        try:
            status, data = await self.ask(url)
        except Exception as exc:
            log.warning(
                "console: forwarding household=%s to %s failed: %r", household_id, owner, exc
            )
            return _error(
                web, 503, f"the worker that owns {household_id!r} ({owner}) does not answer"
            )
        return web.bytes(data, content_type=JSON, status=status)

    def authorized(self, request: Any) -> bool:
        token = self.umh.settings.api_token
        if not token:
            return True
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def solve(self, web: Any, request: Any) -> Any:
        if not self.authorized(request):
            response = _error(
                web, 401, "missing or wrong bearer token (Authorization: Bearer <UMH_API_TOKEN>)"
            )
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        length = request.content_length
        if length is not None and length > MAX_SOLVE_BODY:
            return _error(web, 413, f"body larger than {MAX_SOLVE_BODY} bytes")
        body = bytearray()
        async for chunk in request.content.iter_chunked(65536):
            body.extend(chunk)
            if len(body) > MAX_SOLVE_BODY:
                return _error(web, 413, f"body larger than {MAX_SOLVE_BODY} bytes")
        try:
            raw = loads(bytes(body))
        except ValidationError as exc:
            return self.result(web, invalid_result(None, exc.issues), 400)
        if self._pending >= MAX_PENDING_SOLVES:
            return _error(web, 429, "too many what-if solves waiting; retry")
        if self._executor is None:
            # its own thread: what-ifs never wait behind (or delay) the stream's solves
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="umh-whatif")
        self._pending += 1
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self._executor, solve_raw, raw, SOLVE_TIME_LIMIT_S
            )
        finally:
            self._pending -= 1
        return self.result(web, result, 422 if result.status == "invalid_input" else 200)

    def result(self, web: Any, result: Any, status: int) -> Any:
        # byte for byte what `umh solve` prints
        data = orjson.dumps(result_to_json(result)) + b"\n"
        return web.bytes(data, content_type=JSON, status=status)

    async def events(self, web: Any, request: Any) -> Any:
        from aiohttp import web as aioweb

        response = aioweb.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue = self.feed.subscribe()
        try:
            await response.write(b"retry: 2000\n" + sse("hello", {"worker": self.self_url}))
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    item = b": keepalive\n\n"
                if item is None:
                    break
                await response.write(item)
        except ConnectionError:  # the page went away
            pass
        finally:
            self.feed.unsubscribe(queue)
        return response

    async def static(self, web: Any, name: str) -> Any:
        content_type = STATIC.get(name)
        if content_type is None:
            return _error(web, 404, f"no such file {name!r}")
        data = await asyncio.to_thread((STATIC_DIR / name).read_bytes)
        response = web.bytes(data, content_type=content_type.split(";")[0])
        response.headers["Cache-Control"] = "no-cache"
        return response


def register(umh: UmhApp) -> Console:
    """Add the console's routes to the worker's web server and hook it into the worker."""
    from faust.web import View

    console = Console(umh)
    console.attach()
    app: Any = umh.app

    class Index(View):
        async def get(self, request: Any) -> Any:
            return await console.static(self, "index.html")

    class Asset(View):
        async def get(self, request: Any, name: str) -> Any:
            return await console.static(self, name)

    class Households(View):
        async def get(self, request: Any) -> Any:
            return await console.households(self, request)

    class Household(View):
        async def get(self, request: Any, household_id: str) -> Any:
            return await console.household(self, request, household_id)

    class Solve(View):
        async def post(self, request: Any) -> Any:
            return await console.solve(self, request)

    class Events(View):
        async def get(self, request: Any) -> Any:
            return await console.events(self, request)

    app.page("/")(Index)
    app.page("/console/{name}")(Asset)
    app.page("/api/households")(Households)
    app.page("/api/households/{household_id}")(Household)
    app.page("/api/solve")(Solve)
    app.page("/api/events")(Events)

    async def on_web_shutdown(_web_app: Any) -> None:
        console.feed.close()  # ends the event streams, so the web server stops at once

    app.web.web_app.on_shutdown.append(on_web_shutdown)

    async def on_shutdown(_sender: Any, **kwargs: Any) -> None:
        console.close()

    app.on_before_shutdown.connect(on_shutdown)
    return console
