"""The ward server without Kafka: the page is served, and an acknowledgement needs JSON from the same origin."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streamer.config import Settings
from streamer.ward.server import WARD, build_app

pytestmark = pytest.mark.unit


async def _requests() -> dict[str, int | str]:
    app = build_app(Settings(), follow=False)
    app[WARD].state.apply_alert({"alert_id": "a1", "device_id": "d1", "condition": "AF_EPISODE", "priority": "medium",
                                 "state": "RESOLVED", "episode_start_ms": 0, "transition_ts_ms": 1, "message": "m"})  # fmt: skip
    async with TestClient(TestServer(app)) as client:
        page = await client.get("/")
        snap = await (await client.get("/api/ward")).json()
        as_text = await client.post("/api/ack", data='{"alert_id": "a1"}', headers={"Content-Type": "text/plain"})
        other = await client.post("/api/ack", json={"alert_id": "a1"}, headers={"Origin": "http://evil.example"})
        resolved = await client.post("/api/ack", json={"alert_id": "a1"})
        garbage = await client.post("/api/ack", data="{", headers={"Content-Type": "application/json"})
        return {"page": page.status, "html": await page.text(), "alerts": len(snap["alerts"]),
                "text": as_text.status, "origin": other.status, "resolved": resolved.status, "garbage": garbage.status}  # fmt: skip


def test_page_snapshot_and_acknowledgement_checks() -> None:
    got = asyncio.run(_requests())
    assert got["page"] == 200 and "EventSource" in got["html"]
    assert got["alerts"] == 0  # resolved alerts are not open
    assert got["text"] == 403 and got["origin"] == 403  # cross-site form posts cannot acknowledge
    assert got["resolved"] == 404 and got["garbage"] == 400
