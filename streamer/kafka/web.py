"""The worker's HTTP endpoints on ``VITALS_WEB_HOST:VITALS_WEB_PORT``: ``/health``, ``/ready`` and ``/metrics``.

A small aiohttp server of our own in the worker's event loop rather than Faust's web server, whose default
views (``/table/...``, ``/router/...``) would show table keys, i.e. device ids, to anyone who can reach the port.

- ``/health``: 200 while the process and its event loop run (Kubernetes liveness).
- ``/ready``: 200 when partitions are assigned, the tables restored, the consumer flowing and every model
  loaded; 503 with the failing checks otherwise (readiness, the compose healthcheck).
- ``/metrics``: Prometheus text format; consumer lag is refreshed at each scrape.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from streamer.config import Settings
from streamer.kafka import metrics

log = logging.getLogger(__name__)


def readiness(app: faust.App) -> dict[str, bool]:
    """The four readiness checks, each True or False."""
    try:
        assigned = bool(app.consumer.assignment()) and not app.rebalancing
    except Exception:  # noqa: BLE001 - the consumer is not started yet
        assigned = False
    return {
        "assigned": assigned,
        "restored": app.tables.recovery.completed.is_set(),  # type: ignore[attr-defined]
        "consuming": app.flow_control.is_active(),
        "models_loaded": metrics.models_loaded(),
    }


async def consumer_lag(app: faust.App, topics: set[str]) -> dict[tuple[str, int], int]:
    """Highwater minus position for every assigned partition of ``topics`` (the agents' inputs)."""
    consumer = app.consumer
    tps = [tp for tp in consumer.assignment() if tp.topic in topics]
    positions = await asyncio.wait_for(asyncio.gather(*(consumer.position(tp) for tp in tps)), timeout=5.0)
    lags = {}
    for tp, position in zip(tps, positions, strict=True):
        highwater = consumer.highwater(tp)
        if highwater is not None and position is not None:
            lags[(tp.topic, tp.partition)] = max(0, highwater - position)
    return lags


def build_web_app(app: faust.App, input_topics: set[str]) -> web.Application:
    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(_: web.Request) -> web.Response:
        checks = readiness(app)
        ok = all(checks.values())
        metrics.READY.set(1 if ok else 0)
        return web.json_response({"ready": ok, "checks": checks}, status=200 if ok else 503)

    async def scrape(_: web.Request) -> web.Response:
        try:
            metrics.set_lag(await consumer_lag(app, input_topics))
        except Exception as exc:  # noqa: BLE001 - no consumer yet or a slow broker: serve the rest anyway
            log.debug("consumer lag not available: %s", exc)
        metrics.READY.set(1 if all(readiness(app).values()) else 0)
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    web_app = web.Application()
    web_app.router.add_get("/health", health)
    web_app.router.add_get("/ready", ready)
    web_app.router.add_get("/metrics", scrape)
    return web_app


def attach(app: faust.App, settings: Settings) -> None:
    """Serve the endpoints from the worker's start (``VITALS_WEB_PORT=0`` turns them off)."""
    if not settings.web_port:
        return
    names = settings.topics
    inputs = {names.telemetry, names.telemetry_valid, names.alerts_ack}
    runners: list[web.AppRunner] = []

    @app.task
    async def serve_http() -> None:
        runner = web.AppRunner(build_web_app(app, inputs), access_log=None)
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
