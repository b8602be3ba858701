"""HTTP routes of the worker: `/metrics`, `/healthz`, and the operations console.

The console (`/`, `/console/*`, `/api/households`, `/api/households/{id}`, `/api/solve`,
`/api/events`) lives in `console_api`; `register` adds it with the monitoring routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from streams.worker.app import UmhApp


def register(umh: UmhApp) -> None:
    app = umh.app
    if not umh.settings.web_enabled:
        return

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(umh.metrics.render(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        ok = umh.healthy()
        # which deployment answered (an operator's probe, or a test, reaching the wrong port)
        body = {"status": "ok" if ok else "unavailable", "app_id": umh.settings.app_id}
        return web.json(body, status=200 if ok else 503)

    from streams.console.api import register as register_console

    register_console(umh)
