"""The worker's HTTP endpoints on ``VITALS_WEB_HOST:VITALS_WEB_PORT``: ``/health``, ``/ready`` and ``/metrics``.

A small aiohttp server of our own in the worker's event loop rather than Faust's web server, whose default
views (``/table/...``, ``/router/...``) would show table keys, i.e. device ids, to anyone who can reach the port.

- ``/health``: 200 while the process and its event loop run (Kubernetes liveness).
- ``/ready``: 200 when every stage's consumer holds partitions and has restored their changelog state, every
  stage loop runs and every model loaded; 503 with the failing checks otherwise (readiness, the compose healthcheck).
- ``/metrics``: Prometheus text format; consumer lag is refreshed at each scrape.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import faust
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from streamer.config import Settings
from streamer.kafka import metrics

log = logging.getLogger(__name__)


NOT_STARTED = {"assigned": False, "restored": False, "consuming": False, "models_loaded": False}


def readiness(worker: Any | None) -> dict[str, bool]:
    """The four readiness checks of the stages (``DeliveryWorker.readiness``), all False before it starts."""
    if worker is None:
        return dict(NOT_STARTED)
    try:
        return worker.readiness()  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - a consumer not started yet
        return dict(NOT_STARTED)


def build_web_app(current: Callable[[], Any | None]) -> web.Application:
    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(_: web.Request) -> web.Response:
        checks = readiness(current())
        ok = all(checks.values())
        metrics.READY.set(1 if ok else 0)
        return web.json_response({"ready": ok, "checks": checks}, status=200 if ok else 503)

    async def scrape(_: web.Request) -> web.Response:
        try:
            worker = current()
            if worker is not None:
                metrics.set_lag(await asyncio.wait_for(worker.lag(), timeout=5.0))
        except Exception as exc:  # noqa: BLE001 - no consumer yet or a slow broker: serve the rest anyway
            log.debug("consumer lag not available: %s", exc)
        metrics.READY.set(1 if all(readiness(current()).values()) else 0)
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    web_app = web.Application()
    web_app.router.add_get("/health", health)
    web_app.router.add_get("/ready", ready)
    web_app.router.add_get("/metrics", scrape)
    return web_app


def attach(app: faust.App, settings: Settings, current: Callable[[], Any | None]) -> None:
    """Serve the endpoints from the worker's start (``VITALS_WEB_PORT=0`` turns them off)."""
    if not settings.web_port:
        return
    runners: list[web.AppRunner] = []

    @app.task
    async def serve_http() -> None:
        runner = web.AppRunner(build_web_app(current), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, settings.web_host, settings.web_port).start()
        except OSError as exc:  # the pipeline matters more than its gauges: keep processing, say so loudly
            log.error(
                "cannot serve /health, /ready and /metrics on %s:%d: %s", settings.web_host, settings.web_port, exc
            )
            await runner.cleanup()
            return
        runners.append(runner)
        log.info("serving /health, /ready and /metrics on http://%s:%d", settings.web_host, settings.web_port)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def _stop_http(sender: Any, **kwargs: Any) -> None:
        for runner in runners:
            await runner.cleanup()
