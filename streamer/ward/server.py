"""``vitalstream ward``: a small aiohttp server that follows the feature and alert topics and serves the ward page.

Routes: ``/`` the page, ``/api/ward`` the snapshot as JSON, ``/events`` server-sent events (one snapshot per
change), ``POST /api/ack`` an acknowledgement that goes to ``vitals.alerts.ack`` exactly as ``vitalstream ack``
sends it (the worker's ack agent turns it into an ACKNOWLEDGED transition, which comes back on the alert topic).
It listens on 127.0.0.1 unless told otherwise and has no login: put it behind the hospital's own access control.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streamer.config import Settings
from streamer.contracts import AlertAck
from streamer.ward.state import WardState

log = logging.getLogger(__name__)
KEEPALIVE_S = 10.0  # an SSE comment this often keeps proxies from closing an idle stream
TICK_S = 5.0  # re-send the snapshot this often so a device that went quiet is shown as not streaming


def _now_ms() -> int:
    return int(time.time() * 1000)


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """The connection settings in aiokafka's form (an SSL context instead of file names)."""
    kwargs = {k: v for k, v in settings.kafka_client_kwargs().items() if not k.startswith("ssl_")}
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
        if settings.ssl_certfile:
            context.load_cert_chain(str(settings.ssl_certfile), str(settings.ssl_keyfile or ""))
        kwargs["ssl_context"] = context
    return kwargs


class Ward:
    """The state, the change signal the event streams wait on, and the Kafka clients."""

    def __init__(self, settings: Settings, user: str) -> None:
        self.settings, self.user = settings, user
        self.state = WardState(stale_ms=int(settings.silence_timeout_s * 1000))
        self.version = 0
        self.changed = asyncio.Condition()
        self.producer: AIOKafkaProducer | None = None

    async def bump(self) -> None:
        async with self.changed:
            self.version += 1
            self.changed.notify_all()

    async def wait_change(self, seen: int, timeout_s: float) -> bool:
        """Wait until the version moves past ``seen``; False when ``timeout_s`` passed first."""
        async with self.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait_for(lambda: self.version != seen), timeout_s)
            return self.version != seen

    async def follow(self) -> None:
        names = self.settings.topics
        consumer = AIOKafkaConsumer(
            names.features, names.alerts, group_id=None, auto_offset_reset="earliest", **aiokafka_kwargs(self.settings)
        )
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=2000)
                for tp, records in batches.items():
                    for record in records:
                        self._apply(tp.topic, record)
                if batches:
                    await self.bump()
        finally:
            await consumer.stop()

    def _apply(self, topic: str, record: Any) -> None:
        try:
            value = json.loads(record.value)
            if topic == self.settings.topics.alerts:
                self.state.apply_alert(value)
            else:
                self.state.apply_feature(value, _now_ms())
        except (ValueError, KeyError, TypeError):
            log.warning("ward: skipping a record it cannot read at %s[%d]@%d", topic, record.partition, record.offset)

    async def acknowledge(self, alert_id: str) -> AlertAck | None:
        alert = self.state.alerts.get(alert_id)
        if alert is None or alert["state"] == "RESOLVED" or self.producer is None:
            return None
        ack = AlertAck(alert_id=alert_id, device_id=alert["device_id"], by=self.user, ts_ms=_now_ms())
        await self.producer.send_and_wait(
            self.settings.topics.alerts_ack, ack.model_dump_json().encode(), key=alert_id.encode()
        )
        log.info("ward: acknowledgement of %s sent", alert_id)
        return ack


WARD = web.AppKey("ward", Ward)


async def _page(request: web.Request) -> web.Response:
    html = files("streamer.ward").joinpath("page.html").read_text()
    return web.Response(text=html, content_type="text/html")


async def _snapshot(request: web.Request) -> web.Response:
    ward: Ward = request.app[WARD]
    return web.json_response(ward.state.snapshot(_now_ms()))


async def _events(request: web.Request) -> web.StreamResponse:
    ward: Ward = request.app[WARD]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    seen = -1
    while True:
        if ward.version != seen:
            seen = ward.version
            await resp.write(f"data: {json.dumps(ward.state.snapshot(_now_ms()))}\n\n".encode())
        if not await ward.wait_change(seen, KEEPALIVE_S):
            await resp.write(b": keepalive\n\n")


async def _ack(request: web.Request) -> web.Response:
    ward: Ward = request.app[WARD]
    # Another site's page can POST text/plain here without asking; JSON needs a CORS preflight we never grant.
    origin = request.headers.get("Origin")
    if request.content_type != "application/json" or (origin and origin.split("://")[-1] != request.host):
        return web.json_response({"error": "acknowledge from the ward page (JSON, same origin)"}, status=403)
    try:
        body = await request.json()
        alert_id = str(body["alert_id"])
    except (ValueError, KeyError, TypeError):
        return web.json_response({"error": 'expected JSON {"alert_id": ...}'}, status=400)
    ack = await ward.acknowledge(alert_id)
    if ack is None:
        return web.json_response({"error": "no open alert with that id"}, status=404)
    return web.json_response({"acknowledged": alert_id, "by": ack.by}, status=202)


async def _background(app: web.Application) -> AsyncIterator[None]:
    ward: Ward = app[WARD]
    ward.producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **aiokafka_kwargs(ward.settings))
    await ward.producer.start()
    tasks = [asyncio.create_task(ward.follow()), asyncio.create_task(_tick(ward))]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await ward.producer.stop()


async def _tick(ward: Ward) -> None:
    while True:
        await asyncio.sleep(TICK_S)
        await ward.bump()


def build_app(settings: Settings, user: str = "ward", *, follow: bool = True) -> web.Application:
    """The ward app; ``follow=False`` leaves out the Kafka clients (the page and its checks alone)."""
    app = web.Application()
    app[WARD] = Ward(settings, user)
    app.router.add_get("/", _page)
    app.router.add_get("/api/ward", _snapshot)
    app.router.add_get("/events", _events)
    app.router.add_post("/api/ack", _ack)
    if follow:
        app.cleanup_ctx.append(_background)
    return app


def serve(settings: Settings, host: str, port: int, user: str) -> None:
    log.info("ward view on http://%s:%d/", host, port)
    web.run_app(build_app(settings, user), host=host, port=port, print=None, handle_signals=True)
